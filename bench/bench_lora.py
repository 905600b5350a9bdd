"""Benchmark: applying and removing a LoRA on a full-size SD1.5 UNet, ours against diffusers.

The LoRA (rank 64 by default) covers every layer of the UNet's transformer blocks (proj_in/out, attention
q/k/v/out, feed-forward), as kohya's default SD1 LoRA does. From the same tensors, written once in kohya's layout
(ours reads that) and once in diffusers/PEFT's layout (diffusers reads that), in this one process, interleaved:
  A. ours: sdui.core.lora.activate(model, [file]) then activate(model, []) (exact restore from the saved weights)
  B. diffusers: unet.load_lora_adapter(file) + fuse_lora() then unfuse_lora() + unload_lora()  (needs `peft`)
and prints each part's time and the ratio A / B, and the largest difference between the two fused UNets.

    venv/bin/python bench/bench_lora.py [--rank 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402


def full_size_unet():
    from diffusers import UNet2DConditionModel

    config = json.loads((REPO / "configs" / "sd1" / "unet_config.json").read_text())
    torch.manual_seed(0)
    return UNet2DConditionModel(**{k: v for k, v in config.items() if not k.startswith("_")}).eval()


def lora_files(unet, rank: int, folder: Path) -> tuple[Path, Path]:
    """The same LoRA in kohya's layout and in diffusers/PEFT's."""
    g = torch.Generator().manual_seed(1)
    kohya, peft = {}, {}
    for name, module in unet.named_modules():
        if ".transformer_blocks." not in name and not name.endswith(("proj_in", "proj_out")):
            continue
        if not isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            continue
        out_f, in_f = module.weight.shape[:2]
        conv = module.weight.dim() == 4
        down = torch.randn(rank, in_f, *((1, 1) if conv else ()), generator=g) * 0.01
        up = torch.randn(out_f, rank, *((1, 1) if conv else ()), generator=g) * 0.01
        key = "lora_unet_" + name.replace(".", "_")
        kohya[f"{key}.lora_down.weight"], kohya[f"{key}.lora_up.weight"] = down, up
        kohya[f"{key}.alpha"] = torch.tensor(float(rank))
        peft[f"unet.{name}.lora_A.weight"], peft[f"unet.{name}.lora_B.weight"] = down, up
    ours_path, theirs_path = folder / "kohya.safetensors", folder / "peft.safetensors"
    save_file(kohya, str(ours_path))
    save_file(peft, str(theirs_path))
    return ours_path, theirs_path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rank", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    try:
        import peft  # noqa: F401 - diffusers' LoRA loading needs it
    except ImportError:
        sys.exit("diffusers' side of this benchmark needs peft: venv/bin/pip install peft")
    from safetensors.torch import load_file

    from sdui.core.lora import activate
    from sdui.models.sd_model import SDModel

    torch.set_grad_enabled(False)
    unet = full_size_unet()
    model = SDModel(arch="sd1", variant="base", prediction_type="epsilon", unet=unet, vae=None)
    with tempfile.TemporaryDirectory() as tmp:
        ours_file, theirs_file = lora_files(unet, args.rank, Path(tmp))
        times = {"ours apply": [], "ours remove": [], "diffusers load+fuse": [], "diffusers unfuse+unload": []}
        biggest = 0.0
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            activate(model, [(ours_file, 1.0, 1.0)])
            t1 = time.perf_counter()
            ours_weight = unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q.weight.clone()
            activate(model, [])
            t2 = time.perf_counter()
            times["ours apply"].append(t1 - t0)
            times["ours remove"].append(t2 - t1)

            t0 = time.perf_counter()
            unet.load_lora_adapter(load_file(str(theirs_file)), prefix="unet", adapter_name="bench")
            unet.fuse_lora(lora_scale=1.0)
            t1 = time.perf_counter()
            layer = unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q
            theirs_weight = getattr(layer, "base_layer", layer).weight.clone()
            unet.unfuse_lora()
            unet.unload_lora()
            t2 = time.perf_counter()
            times["diffusers load+fuse"].append(t1 - t0)
            times["diffusers unfuse+unload"].append(t2 - t1)
            biggest = max(biggest, float((ours_weight - theirs_weight).abs().max()))
    median = {k: statistics.median(v) for k, v in times.items()}
    for key, value in median.items():
        print(f"{key:26s} {value:8.3f} s (median of {args.repeats})")
    ours = median["ours apply"] + median["ours remove"]
    theirs = median["diffusers load+fuse"] + median["diffusers unfuse+unload"]
    print(f"apply + remove: ours {ours:.3f} s, diffusers {theirs:.3f} s, ratio {ours / theirs:.3f}")
    print(f"largest difference between the fused weights: {biggest:.2e}")


if __name__ == "__main__":
    main()
