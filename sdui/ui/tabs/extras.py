"""The Extras tab (A1111's postprocessing): upscale one image, uploaded files, or a folder of images, with one or two
upscalers (Lanczos, Nearest, and the model files in models/ESRGAN & co), by a factor or to a size, then faces
restored with GFPGAN / CodeFormer at their visibility. Results keep
the parameters their source carried and gain A1111's "Postprocess ..." text; they are saved in
outputs/extras-images (a folder batch: in its output folder, under the source's name)."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from sdui.app.postprocessing import Source, extras_output_dir, run_extras
from sdui.app.user_folders import image_files, open_image, user_folder
from sdui.errors import UserError
from sdui.ui import common, generation
from sdui.upscalers.extras import ExtrasOptions
from sdui.upscalers.upscaling import upscaler_names

TAB = "extras"
SINGLE, BATCH, FOLDER = 0, 1, 2  # which source sub-tab is open (A1111's extras_mode)
SCALE_BY, SCALE_TO = 0, 1  # resize_mode


@dataclass
class ExtrasTab:
    panel: generation.OutputPanel
    image_input: gr.Image  # where "Send to extras" puts an image
    paste_event: tuple | None = None  # nothing to paste: extras have no generation parameters


def run(ctx, mode, image, files, input_dir, output_dir, show_results, resize_mode, *upscale) -> tuple:
    """(gallery, kept images, their infotexts, info text, status html) for the chosen source."""
    resize, width, height, crop, upscaler_1, upscaler_2, visibility, *faces = upscale
    gfpgan, codeformer, codeformer_weight = (*faces, 0, 0, 0)[:3]  # face restoration sliders: none = off
    try:
        options = ExtrasOptions(
            resize_mode=int(resize_mode),
            upscaling_resize=float(resize),
            upscaling_resize_w=int(width or 0),
            upscaling_resize_h=int(height or 0),
            upscaling_crop=bool(crop),
            upscaler_1=upscaler_1 or "None",
            upscaler_2=upscaler_2 or "None",
            extras_upscaler_2_visibility=float(visibility),
            gfpgan_visibility=float(gfpgan or 0),
            codeformer_visibility=float(codeformer or 0),
            codeformer_weight=float(codeformer_weight or 0),
        )
        save_to, keep_names = extras_output_dir(ctx), False
        if mode == FOLDER:
            files = image_files(ctx, user_folder(ctx, input_dir, "input"))
            sources = [Source(open_image(ctx, path), path.name) for path in files]
            if output_dir and output_dir.strip():
                save_to, keep_names = user_folder(ctx, output_dir, "output"), True
        elif mode == BATCH:
            sources = [Source(open_image(ctx, path), path) for path in files or []]
        else:
            sources = [Source(open_image(ctx, image))] if image else []
        outputs = run_extras(ctx, sources, options, save_to=save_to, keep_names=keep_names)
    except UserError as e:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), common.error_html(e.message)
    images = [out.image for out in outputs]
    shown = images if mode != FOLDER or show_results else []
    texts = [out.image.info.get("parameters", "") for out in outputs]
    info = outputs[0].text if outputs else ""
    where = outputs[0].path.parent if outputs and outputs[0].path else save_to
    status = common.note_html(f"{len(outputs)} image{'s' * (len(outputs) != 1)} saved in {where}")
    return shown, images, texts, info, status


def face_restoration_note() -> str:
    """Which face restorers can run, and for the others why not (missing weights, CodeFormer's package)."""
    from sdui.upscalers.face_restoration import FACE_RESTORERS, FaceRestorationError

    parts = []
    for restorer in FACE_RESTORERS.list():
        if restorer.name == "RestoreFormer":
            continue  # not offered by the Extras sliders (A1111's GFPGAN and CodeFormer)
        try:
            FACE_RESTORERS.require(restorer.name)
            parts.append(f"{restorer.name}: {restorer.path.name}.")
        except FaceRestorationError as e:
            parts.append(e.message + ".")
    return "Face restoration: " + " ".join(parts)


def create_tab(ctx) -> ExtrasTab:
    mode = gr.State(SINGLE)
    resize_mode = gr.State(SCALE_BY)
    with gr.Row(equal_height=False):
        with gr.Column(variant="compact"):
            with gr.Tabs(elem_id="mode_extras"):
                with gr.Tab("Single Image", id="extras_single_tab", elem_id="extras_single_tab") as single_tab:
                    # filepath + image_mode None: the file as uploaded, so its parameters chunk is kept
                    image = gr.Image(
                        label="Source",
                        sources=["upload", "clipboard"],
                        type="filepath",
                        image_mode=None,
                        format="png",
                        elem_id="extras_image",
                        height=420,
                    )
                with gr.Tab("Batch Process", id="extras_batch_process_tab", elem_id="extras_batch_process_tab") as b:
                    files = gr.File(
                        label="Batch Process", file_count="multiple", file_types=["image"], elem_id="extras_image_batch"
                    )
                with gr.Tab(
                    "Batch from Directory", id="extras_batch_directory_tab", elem_id="extras_batch_directory_tab"
                ) as d:
                    hidden = ctx.flags.hide_ui_dir_config
                    input_dir = gr.Textbox(
                        label="Input directory",
                        placeholder="A folder on this computer, with the images to upscale",
                        elem_id="extras_batch_input_dir",
                        interactive=not hidden,
                    )
                    output_dir = gr.Textbox(
                        label="Output directory",
                        placeholder="Empty: outputs/extras-images",
                        elem_id="extras_batch_output_dir",
                        interactive=not hidden,
                    )
                    show_results = gr.Checkbox(True, label="Show result images", elem_id="extras_show_extras_results")
            generate = gr.Button("Generate", variant="primary", elem_id="extras_generate")
            with gr.Tabs(elem_id="extras_resize_mode"):
                with gr.Tab("Scale by", id="extras_scale_by_tab", elem_id="extras_scale_by_tab") as by_tab:
                    resize = gr.Slider(
                        1.0, 8.0, value=2.0, step=0.05, label="Resize", elem_id="extras_upscaling_resize"
                    )
                with gr.Tab("Scale to", id="extras_scale_to_tab", elem_id="extras_scale_to_tab") as to_tab:
                    with gr.Row():
                        width = gr.Number(512, label="Width", precision=0, elem_id="extras_upscaling_resize_w")
                        height = gr.Number(512, label="Height", precision=0, elem_id="extras_upscaling_resize_h")
                        crop = gr.Checkbox(True, label="Crop to fit", elem_id="extras_upscaling_crop")
            with gr.Row():
                names = upscaler_names(refresh=True)
                upscaler_1 = gr.Dropdown(names, value="None", label="Upscaler 1", elem_id="extras_upscaler_1")
                upscaler_2 = gr.Dropdown(names, value="None", label="Upscaler 2", elem_id="extras_upscaler_2")
                refresh = common.tool_button("🔄", elem_id="extras_refresh_upscalers")
            visibility = gr.Slider(
                0.0, 1.0, value=0.0, step=0.001, label="Upscaler 2 visibility", elem_id="extras_upscaler_2_visibility"
            )
            gfpgan = gr.Slider(
                0.0, 1.0, value=0.0, step=0.001, label="GFPGAN visibility", elem_id="extras_gfpgan_visibility"
            )
            with gr.Row():
                codeformer = gr.Slider(
                    0.0,
                    1.0,
                    value=0.0,
                    step=0.001,
                    label="CodeFormer visibility",
                    elem_id="extras_codeformer_visibility",
                )
                codeformer_weight = gr.Slider(
                    0.0,
                    1.0,
                    value=0.0,
                    step=0.001,
                    label="CodeFormer weight (0 = maximum effect, 1 = minimum effect)",
                    elem_id="extras_codeformer_weight",
                )
            gr.HTML(
                common.note_html(
                    "Model upscalers: put ESRGAN, Real-ESRGAN, SwinIR, DAT or HAT files (.pth, .safetensors) into "
                    "models/ESRGAN (or RealESRGAN, SwinIR, DAT, HAT), then press 🔄. " + face_restoration_note()
                ),
                elem_id="extras_upscaler_help",
            )
        panel = generation.create_output_panel(TAB)

    for tab, value in ((single_tab, SINGLE), (b, BATCH), (d, FOLDER)):
        tab.select(lambda v=value: v, outputs=[mode], queue=False, api_visibility="private")
    for tab, value in ((by_tab, SCALE_BY), (to_tab, SCALE_TO)):
        tab.select(lambda v=value: v, outputs=[resize_mode], queue=False, api_visibility="private")

    def refresh_upscalers(first, second):
        choices = upscaler_names(refresh=True)
        return (
            gr.Dropdown(choices=choices, value=first if first in choices else "None"),
            gr.Dropdown(choices=choices, value=second if second in choices else "None"),
        )

    refresh.click(
        refresh_upscalers,
        inputs=[upscaler_1, upscaler_2],
        outputs=[upscaler_1, upscaler_2],
        queue=False,
        api_visibility="private",
    )
    generate.click(
        lambda *values: run(ctx, *values),
        inputs=[mode, image, files, input_dir, output_dir, show_results, resize_mode]
        + [resize, width, height, crop, upscaler_1, upscaler_2, visibility, gfpgan, codeformer, codeformer_weight],
        outputs=[panel.gallery, panel.images, panel.infotexts, panel.generation_info, panel.status],
        api_visibility="private",
        show_progress_on=[panel.status],
    )

    def on_select(evt: gr.SelectData):
        return evt.index if isinstance(evt.index, int) else None

    panel.gallery.select(on_select, inputs=None, outputs=[panel.selected], queue=False, api_visibility="private")
    generation.wire_output_tools(ctx, panel, TAB)
    return ExtrasTab(panel, image)
