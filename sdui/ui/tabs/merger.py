"""The Checkpoint Merger tab (A1111's modules/ui_checkpoint_merger.py, with its element ids): models A, B, C from
the checkpoint list, the interpolation method and multiplier, format, float16, config, baked-in VAE, discarded
weights and metadata; Merge runs sdui.models.merge through the job queue (never beside a generation), then the
checkpoint list is rescanned so the new file is in every picker and in /sdapi/v1/sd-models, with its hash.
"""

from __future__ import annotations

import html
import json
import logging

import gradio as gr

from sdui.errors import UserError
from sdui.models import merge
from sdui.ui import common

log = logging.getLogger(__name__)

DESCRIPTIONS = {
    merge.NO_INTERPOLATION: "Model A alone: to convert its format, bake in a VAE, discard weights or save it as "
    "float16. Needs A.",
    merge.WEIGHTED_SUM: "A weighted sum of two models: A × (1 − M) + B × M. Needs A and B.",
    merge.ADD_DIFFERENCE: "What B adds to C, added to A: A + (B − C) × M. Needs A, B and C.",
}


def interp_description(method: str) -> str:
    text = DESCRIPTIONS.get(method, "")
    return f"<p style='margin-bottom: 2.5em'>{html.escape(text)}</p>"


def vae_files(ctx) -> dict:
    """Name -> file of the VAEs to bake in: the VAE folder and *.vae.* beside checkpoints (the SD VAE list)."""
    from sdui.core.vae_choice import vae_files as listed

    return listed(ctx.paths.vae_dir, ctx.paths.ckpt_dirs)


def vae_choices(ctx) -> list[str]:
    return [merge.NO_VAE, *vae_files(ctx)]


def title_for(ctx, name: str | None) -> str | None:
    """The current list title of the checkpoint a dropdown holds (titles gain "[hash]" once a file is hashed)."""
    if not name:
        return None
    info = next((i for i in ctx.store.checkpoints if name in i.ids), None)
    return info.title if info is not None else None


def dropdown_updates(ctx, *values) -> list:
    titles = common.checkpoint_titles(ctx)
    return [gr.Dropdown(choices=titles, value=title_for(ctx, v)) for v in values]


def read_metadata(ctx, primary: str | None, secondary: str | None, tertiary: str | None) -> str:
    """The safetensors metadata of the chosen models as JSON (later ones win), for the metadata editor; names not
    in the list are passed over, as A1111 does."""
    infos = [next((i for i in ctx.store.checkpoints if name in i.ids), None) for name in (primary, secondary, tertiary)]
    return json.dumps(merge.metadata_of(infos), indent=4, ensure_ascii=False)


def refresh_models(ctx, value: str | None):
    """🔄 beside A, B or C: rescan the checkpoint folders."""
    ctx.store.refresh()
    return dropdown_updates(ctx, value)[0]


def result_html(result: merge.MergeResult, request: merge.MergeRequest, title: str | None) -> str:
    lines = [f"Checkpoint saved to {result.path}"]
    if result.taken_by is not None:
        lines.append(
            f"Saved under a new name: {result.wanted} was taken by {result.taken_by.name}, which was not overwritten."
        )
    if title:
        lines.append(f"Listed as {title}.")
    if result.baked_vae_keys:
        lines.append(f"VAE baked in from {request.bake_in_vae} ({result.baked_vae_keys} weights).")
    if result.discarded_keys:
        lines.append(f"Discarded {len(result.discarded_keys)} weights matching {request.discard_weights!r}.")
    if result.config is not None:
        lines.append(f"Config copied to {result.config.name}.")
    if request.save_metadata and request.checkpoint_format == "ckpt":
        lines.append("Metadata is saved in .safetensors files only; this .ckpt has none.")
    return "".join(f"<p>{html.escape(line)}</p>" for line in lines)


def run_modelmerger(
    ctx,
    primary,
    secondary,
    tertiary,
    interp_method,
    multiplier,
    save_as_half,
    custom_name,
    checkpoint_format,
    config_source,
    bake_in_vae,
    discard_weights,
    save_metadata,
    add_merge_recipe,
    copy_metadata_fields,
    metadata_json,
) -> tuple:
    """Merge button: (A, B, C dropdowns, the top bar's checkpoint dropdown, result HTML). The merge runs as a job of
    the queue; the checkpoint list is rescanned afterwards, failed or not (A1111 does so too)."""
    request = merge.MergeRequest(
        primary=primary,
        secondary=secondary,
        tertiary=tertiary,
        method=interp_method,
        multiplier=multiplier,
        save_as_half=bool(save_as_half),
        custom_name=custom_name or "",
        checkpoint_format=checkpoint_format,
        config_source=0 if config_source is None else config_source,
        bake_in_vae=bake_in_vae or merge.NO_VAE,
        discard_weights=discard_weights or "",
        save_metadata=bool(save_metadata),
        add_merge_recipe=bool(add_merge_recipe),
        copy_metadata_fields=bool(copy_metadata_fields),
        metadata_json=metadata_json or "{}",
    )

    def job_fn(job):
        def progress(what, done, total):
            job.textinfo, job.sampling_step, job.sampling_steps = what, done, total

        job.job_count = 1
        result = merge.merge_checkpoints(
            request,
            ctx.store.checkpoints,
            vae_files(ctx),
            ctx.paths.ckpt_dirs[0],  # --ckpt-dir when given, else models/Stable-diffusion (A1111)
            hash_cache=ctx.store.hash_cache,
            hashing=not ctx.store.no_hashing,
            progress=progress,
        )
        info = merge.register_merged(ctx.store, result.path)
        return result, info

    try:
        result, info = ctx.jobs.run(job_fn, name="model-merge")
        message = result_html(result, request, info.title if info else None)
    except UserError as e:
        ctx.store.refresh()
        message = common.error_html(f"Error merging checkpoints: {e.message}")
    except Exception as e:  # an unexpected failure is shown, not only logged
        log.exception("Merging checkpoints failed")
        ctx.store.refresh()
        message = common.error_html(f"Error merging checkpoints: {type(e).__name__}: {e}")
    top = gr.Dropdown(choices=common.checkpoint_titles(ctx), value=common.current_checkpoint_title(ctx))
    return (*dropdown_updates(ctx, primary, secondary, tertiary), top, message)


def create_tab(ctx, checkpoint_dropdown: gr.Dropdown | None = None) -> None:
    """Lay out the tab; a merge also refreshes `checkpoint_dropdown` (the top bar's picker)."""
    titles = common.checkpoint_titles(ctx)
    with gr.Row(equal_height=False):
        with gr.Column(variant="compact"):
            description = gr.HTML(interp_description(merge.WEIGHTED_SUM), elem_id="modelmerger_interp_description")
            with gr.Row(elem_id="modelmerger_models", equal_height=True):
                models = []
                for letter, label, elem_id in (
                    ("A", "Primary model (A)", "modelmerger_primary_model_name"),
                    ("B", "Secondary model (B)", "modelmerger_secondary_model_name"),
                    ("C", "Tertiary model (C)", "modelmerger_tertiary_model_name"),
                ):
                    dropdown = gr.Dropdown(choices=titles, value=None, label=label, elem_id=elem_id, filterable=True)
                    refresh = common.tool_button(common.REFRESH_SYMBOL, elem_id=f"refresh_checkpoint_{letter}")
                    refresh.click(
                        lambda value: refresh_models(ctx, value),
                        inputs=[dropdown],
                        outputs=[dropdown],
                        api_visibility="private",
                    )
                    models.append(dropdown)
            custom_name = gr.Textbox(label="Custom Name (Optional)", elem_id="modelmerger_custom_name")
            multiplier = gr.Slider(
                minimum=0.0,
                maximum=1.0,
                step=0.05,
                value=0.3,
                label="Multiplier (M) - set to 0 to get model A",
                elem_id="modelmerger_interp_amount",
            )
            method = gr.Radio(
                choices=list(merge.METHODS),
                value=merge.WEIGHTED_SUM,
                label="Interpolation Method",
                elem_id="modelmerger_interp_method",
            )
            with gr.Row():
                checkpoint_format = gr.Radio(
                    choices=list(merge.FORMATS),
                    value="safetensors",
                    label="Checkpoint format",
                    elem_id="modelmerger_checkpoint_format",
                )
                save_as_half = gr.Checkbox(value=False, label="Save as float16", elem_id="modelmerger_save_as_half")
            with gr.Row():
                # our loader reads a same-name .yaml beside a checkpoint, so copying one means what it means in A1111
                config_source = gr.Radio(
                    choices=list(merge.CONFIG_SOURCES),
                    value=merge.CONFIG_SOURCES[0],
                    type="index",
                    label="Copy config from",
                    elem_id="modelmerger_config_method",
                )
                with gr.Row(equal_height=True):
                    bake_in_vae = gr.Dropdown(
                        choices=vae_choices(ctx),
                        value=merge.NO_VAE,
                        label="Bake in VAE",
                        elem_id="modelmerger_bake_in_vae",
                    )
                    refresh_vae = common.tool_button(common.REFRESH_SYMBOL, elem_id="modelmerger_refresh_bake_in_vae")
            discard_weights = gr.Textbox(
                value="",
                label="Discard weights with matching name",
                elem_id="modelmerger_discard_weights",
                max_length=merge.MAX_REGEX,
            )
            with gr.Accordion("Metadata", open=False, elem_id="modelmerger_metadata_editor") as metadata_editor:
                with gr.Row():
                    save_metadata = gr.Checkbox(value=True, label="Save metadata", elem_id="modelmerger_save_metadata")
                    add_recipe = gr.Checkbox(
                        value=True, label="Add merge recipe metadata", elem_id="modelmerger_add_recipe"
                    )
                    copy_metadata = gr.Checkbox(
                        value=True, label="Copy metadata from merged models", elem_id="modelmerger_copy_metadata"
                    )
                metadata_json = gr.Textbox(
                    value="{}",
                    lines=6,
                    label="Metadata in JSON format",
                    elem_id="modelmerger_metadata_json",
                    max_length=merge.MAX_METADATA_JSON,
                )
                read = gr.Button("Read metadata from selected checkpoints", elem_id="modelmerger_read_metadata")
            merge_button = gr.Button("Merge", variant="primary", elem_id="modelmerger_merge")
        with gr.Column(variant="compact", elem_id="modelmerger_results_container"):
            with gr.Group(elem_id="modelmerger_results_panel"):
                result = gr.HTML(elem_id="modelmerger_result")

    method.change(interp_description, inputs=[method], outputs=[description], api_visibility="private")
    checkpoint_format.change(
        lambda fmt: gr.Accordion(visible=fmt == "safetensors"),
        inputs=[checkpoint_format],
        outputs=[metadata_editor],
        api_visibility="private",
    )
    refresh_vae.click(
        lambda value: gr.Dropdown(choices=vae_choices(ctx), value=value if value in vae_choices(ctx) else merge.NO_VAE),
        inputs=[bake_in_vae],
        outputs=[bake_in_vae],
        api_visibility="private",
    )
    read.click(
        lambda a, b, c: read_metadata(ctx, a, b, c), inputs=models, outputs=[metadata_json], api_visibility="private"
    )
    top = [checkpoint_dropdown] if checkpoint_dropdown is not None else []
    merge_button.click(
        lambda *values: _drop_top(run_modelmerger(ctx, *values), bool(top)),
        inputs=[
            *models,
            method,
            multiplier,
            save_as_half,
            custom_name,
            checkpoint_format,
            config_source,
            bake_in_vae,
            discard_weights,
            save_metadata,
            add_recipe,
            copy_metadata,
            metadata_json,
        ],
        outputs=[*models, *top, result],
        api_visibility="private",
    )


def _drop_top(outputs: tuple, has_top: bool) -> tuple:
    """Without a top bar picker to update (a page built without one), its output is left out."""
    return outputs if has_top else (*outputs[:3], outputs[4])
