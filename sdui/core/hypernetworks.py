"""A1111 hypernetworks (`<hypernet:name:multiplier>`, files in models/hypernetworks): small MLPs that change the
text conditioning before the UNet's cross-attention makes its keys and values from it:

    context_k = context + mlp_k(context) * multiplier        context_v = context + mlp_v(context) * multiplier

The MLPs are rebuilt exactly as A1111 builds them from the file's layer structure, activation, layer norm and
dropout entries (so the saved `linear.N` names line up). They act through diffusers' attention-processor
interface: each cross-attention layer gets a processor that applies them and then attends as usual; the layers'
own processors come back when a job wants none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from sdui.errors import UserError

ACTIVATIONS = {
    "linear": None,
    "relu": torch.nn.ReLU,
    "leakyrelu": torch.nn.LeakyReLU,
    "elu": torch.nn.ELU,
    "swish": torch.nn.Hardswish,
    "tanh": torch.nn.Tanh,
    "sigmoid": torch.nn.Sigmoid,
    "softsign": torch.nn.Softsign,
    "mish": torch.nn.Mish,
    "gelu": torch.nn.GELU,
    "silu": torch.nn.SiLU,
}


class HypernetworkError(UserError):
    pass


def dropout_structure(layers: list, use_dropout: bool, last_layer_dropout: bool) -> list:
    """A1111's parse_dropout_structure: where the (inference-time inactive) dropout layers sit."""
    if not use_dropout:
        return [0] * len(layers)
    return [0, *([0.3] * (len(layers) - 3)), 0.3 if last_layer_dropout else 0, 0]


def build_mlp(dim: int, data: dict) -> torch.nn.Sequential:
    """The layers of one hypernetwork module for context width `dim`, in A1111's order."""
    layers = [float(x) for x in (data.get("layer_structure") or [1, 2, 1])]
    activation = data.get("activation_func") or "linear"
    if activation not in ACTIVATIONS:
        raise HypernetworkError(f"unknown activation function {activation!r}")
    dropouts = data.get("dropout_structure") or dropout_structure(
        layers, bool(data.get("use_dropout")), bool(data.get("last_layer_dropout"))
    )
    modules: list[torch.nn.Module] = []
    for i in range(len(layers) - 1):
        modules.append(torch.nn.Linear(int(dim * layers[i]), int(dim * layers[i + 1])))
        last = i >= len(layers) - 2
        if ACTIVATIONS[activation] is not None and not (last and not data.get("activate_output")):
            modules.append(ACTIVATIONS[activation]())
        if data.get("is_layer_norm"):
            modules.append(torch.nn.LayerNorm(int(dim * layers[i + 1])))
        if dropouts[i + 1] > 0:
            modules.append(torch.nn.Dropout(p=float(dropouts[i + 1])))
    return torch.nn.Sequential(*modules)


@dataclass
class Hypernetwork:
    name: str
    layers: dict[int, tuple[torch.nn.Module, torch.nn.Module]] = field(default_factory=dict)  # dim -> (k, v)


def load_hypernetwork(path: Path, device, dtype) -> Hypernetwork:
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # any unreadable file is the user's to replace
        raise HypernetworkError(f"Cannot read the hypernetwork {path.name}: {e}") from e
    if not isinstance(data, dict):
        raise HypernetworkError(f"{path.name} is not a hypernetwork file")
    network = Hypernetwork(Path(path).stem)
    for dim, pair in data.items():
        if not isinstance(dim, int) or not isinstance(pair, (list, tuple)) or len(pair) != 2:
            continue
        modules = []
        for state in pair:
            mlp = build_mlp(dim, data)
            try:
                mlp.load_state_dict({k.removeprefix("linear."): v for k, v in state.items()})
            except (RuntimeError, AttributeError) as e:
                raise HypernetworkError(f"{path.name}: its layers do not match its own structure ({e})") from e
            modules.append(mlp.to(device, dtype).eval())
        network.layers[dim] = (modules[0], modules[1])
    if not network.layers:
        raise HypernetworkError(f"{path.name} holds no hypernetwork layers")
    return network


class HypernetworkAttnProcessor:
    """Cross-attention with the hypernetworks applied to the keys' and the values' context."""

    def __init__(self, inner, networks: list[tuple[Hypernetwork, float]]):
        self.inner, self.networks = inner, networks

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        if encoder_hidden_states is None:
            return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)
        context_k = context_v = encoder_hidden_states
        for network, multiplier in self.networks:
            pair = network.layers.get(context_k.shape[-1])
            if pair is not None:
                context_k = context_k + pair[0](context_k) * multiplier
                context_v = context_v + pair[1](context_v) * multiplier
        batch = hidden_states.shape[0]
        q, k, v = attn.to_q(hidden_states), attn.to_k(context_k), attn.to_v(context_v)
        head_dim = k.shape[-1] // attn.heads
        q, k, v = (t.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask)
        out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(q.dtype)
        return attn.to_out[1](attn.to_out[0](out)) / attn.rescale_output_factor


def activate_hypernetworks(model, wanted: list[tuple[Path, float]]) -> list[str]:
    """Make `wanted` ((file, multiplier), ...) the hypernetworks of `model`'s cross-attention; returns messages
    about files that could not be used. The same set again does nothing; none puts the own processors back."""
    key = tuple((str(p), float(m)) for p, m in wanted)
    state = model.applied.setdefault("hypernetworks", {"key": (), "own": None})
    if state["key"] == key:
        return []
    unet = model.unet
    if state["own"] is not None:
        unet.set_attn_processor(state["own"])
        state["own"] = None
    state["key"] = ()
    parameter = next(unet.parameters())
    loaded, problems = [], []
    for path, multiplier in key:
        try:
            loaded.append((load_hypernetwork(Path(path), parameter.device, parameter.dtype), multiplier))
        except HypernetworkError as e:
            problems.append(e.message)
    if loaded:
        own = dict(unet.attn_processors)
        state["own"] = own
        unet.set_attn_processor(
            {name: HypernetworkAttnProcessor(p, loaded) if ".attn2." in name else p for name, p in own.items()}
        )
        model.on_undo("hypernetworks", lambda: activate_hypernetworks(model, []))
    state["key"] = key
    return problems
