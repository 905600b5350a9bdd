"""Seeds and noise, A1111's way.

Every image has its own generator seeded with its own seed. Its first draw is the image's initial noise;
later draws (ancestral / SDE samplers) continue the same stream, so an image does not depend on its batch
neighbours. Source "CPU" (our default) draws on a CPU generator and moves the result, so a seed gives the
same noise on CUDA, MPS and CPU; "GPU" draws with a generator on the model's device (A1111's default
there, device-dependent numbers).
"""

from __future__ import annotations

import random
import warnings

import torch

from sdui.core.philox import PhiloxGenerator
from sdui.errors import InvalidRequestError

SOURCES = ("CPU", "GPU", "NV")
LATENT_FACTOR = 8  # pixels per latent cell: "seed resize from" sizes are given in pixels


def fix_seed(seed) -> int:
    """-1, None, '' or text that is not a number -> a random seed in [0, 4294967294); anything else as int."""
    if seed is None or seed == "":
        seed = -1
    elif isinstance(seed, str):
        try:
            seed = int(seed.strip())
        except ValueError:
            seed = -1
    seed = int(seed)
    return random.randrange(4294967294) if seed == -1 else seed


def all_seeds(seed, subseed_strength: float, count: int) -> list[int]:
    """Seed of each image: seed + i, except that with a variation strength all images share the seed
    (only the subseed moves). A list is taken as given."""
    if isinstance(seed, (list, tuple)):
        return [int(s) for s in seed]
    return [int(seed) + (i if subseed_strength == 0 else 0) for i in range(count)]


def all_subseeds(subseed, count: int) -> list[int]:
    """Variation seed of each image: subseed + i. A list is taken as given."""
    if isinstance(subseed, (list, tuple)):
        return [int(s) for s in subseed]
    return [int(subseed) + i for i in range(count)]


def slerp(val: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation from `low` (val 0) to `high` (val 1), along dim 1 as A1111 does for (C, H, W)
    noise; plain linear interpolation when the two are nearly parallel (sin(omega) would vanish).
    A1111's linear fallback has the weights the other way round; that only matters for near-identical
    noises, where both give the same result, so we keep the continuous form.

    Where A1111 divides by zero (an image one latent row high: every column vector has length 1, so the two are
    exactly parallel or opposite) it gets NaN and a black image; there we interpolate linearly too."""
    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return low * (1 - val) + high * val
    omega = torch.acos(dot.clamp(-1.0, 1.0))
    so = torch.sin(omega)
    defined = so.abs() > 1e-6
    so = torch.where(defined, so, torch.ones_like(so))
    w_low = torch.where(defined, torch.sin((1.0 - val) * omega) / so, torch.full_like(so, 1.0 - val))
    w_high = torch.where(defined, torch.sin(val * omega) / so, torch.full_like(so, val))
    return w_low.unsqueeze(1) * low + w_high.unsqueeze(1) * high


def _draw_device(source: str, device) -> torch.device | None:
    """Where a source draws: the CPU, the device, or None for "NV" (cuRAND's numbers computed on the CPU)."""
    if source not in SOURCES:
        raise InvalidRequestError(f"Unknown random number source {source!r}. Use one of: {', '.join(SOURCES)}.")
    if source == "NV":
        return None
    device = torch.device(device) if device is not None else torch.device("cpu")
    # MPS generators are not reproducible across runs: A1111 draws those on the CPU too
    return torch.device("cpu") if source == "CPU" or device.type == "mps" else device


def _generator(seed: int, draw_device: torch.device | None) -> torch.Generator | PhiloxGenerator:
    if draw_device is None:
        return PhiloxGenerator(seed)
    return torch.Generator(draw_device).manual_seed(int(seed))


def _randn(shape, generator: torch.Generator | PhiloxGenerator, draw_device: torch.device | None) -> torch.Tensor:
    if isinstance(generator, PhiloxGenerator):
        return torch.from_numpy(generator.randn(tuple(shape)))
    return torch.randn(tuple(shape), generator=generator, device=draw_device, dtype=torch.float32)


def _paste_centered(small: torch.Tensor, big: torch.Tensor) -> torch.Tensor:
    """Put `small` (C, h, w) in the middle of `big` (C, H, W), cropping whichever is larger per axis."""
    dx = (big.shape[2] - small.shape[2]) // 2
    dy = (big.shape[1] - small.shape[1]) // 2
    w = small.shape[2] if dx >= 0 else small.shape[2] + 2 * dx
    h = small.shape[1] if dy >= 0 else small.shape[1] + 2 * dy
    tx, ty = max(dx, 0), max(dy, 0)
    sx, sy = max(-dx, 0), max(-dy, 0)
    out = big.clone()
    out[:, ty : ty + h, tx : tx + w] = small[:, sy : sy + h, sx : sx + w]
    return out


def create_noise(
    shape,
    seeds,
    subseeds=None,
    subseed_strength: float = 0.0,
    seed_resize_from_h: int = 0,
    seed_resize_from_w: int = 0,
    *,
    source: str = "CPU",
    device=None,
) -> torch.Tensor:
    """Initial noise (B, C, H, W) float32 on `device`, one image per seed; shape is (C, H, W) in latent cells.

    subseeds + subseed_strength: "variation seed" noise slerp-mixed in (strength 0 = none, 1 = only it).
    seed_resize_from_h/w (pixels, <= 0 = off): make the noise at that older size and paste it centred into
    this size's noise, so a composition found at one size survives a resize.
    """
    draw_device = _draw_device(source, device)
    shape = tuple(int(s) for s in shape)
    resized = seed_resize_from_h > 0 and seed_resize_from_w > 0
    noise_shape = (
        (shape[0], seed_resize_from_h // LATENT_FACTOR, seed_resize_from_w // LATENT_FACTOR) if resized else shape
    )
    images = []
    for i, seed in enumerate(seeds):
        noise = _randn(noise_shape, _generator(seed, draw_device), draw_device)
        if subseeds is not None and subseed_strength != 0:
            subseed = subseeds[i] if i < len(subseeds) else 0
            subnoise = _randn(noise_shape, _generator(subseed, draw_device), draw_device)
            noise = slerp(subseed_strength, noise, subnoise)
        if noise_shape != shape:
            # the image's own stream still starts with a full-size draw, as in A1111
            noise = _paste_centered(noise, _randn(shape, _generator(seed, draw_device), draw_device))
        images.append(noise)
    out = torch.stack(images)
    return out.to(torch.device(device)) if device is not None else out


def make_generators(
    seeds, *, source: str = "CPU", device=None, skip_first: bool = True, shape=None
) -> list[torch.Generator]:
    """One generator per image for the sampler's later noise (diffusers' `generator=` list).

    skip_first: advance each past the initial noise draw of `shape` (C, H, W), so ancestral noise continues
    the image's stream (A1111's ImageRNG). Pass False with seeds already offset by eta_noise_seed_delta:
    A1111 then restarts each generator at seed + delta.
    """
    draw_device = _draw_device(source, device)
    generators = [_generator(seed, draw_device) for seed in seeds]
    if skip_first:
        if shape is None:
            raise ValueError("make_generators(skip_first=True) needs the latent shape of the first draw")
        for g in generators:
            _randn(shape, g, draw_device)
    return generators


class ImageNoise:
    """The noise a sampler draws during sampling: one (C, H, W) draw per image from the image's own generator,
    stacked, on `device`. The generators continue each image's stream after its initial noise, or restart at
    seed + ENSD when eta_noise_seed_delta is set (A1111's ImageRNG.next())."""

    def __init__(self, seeds, shape, *, source: str = "CPU", device=None, ensd: int = 0):
        self.shape = tuple(int(s) for s in shape)
        self.draw_device = _draw_device(source, device)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        if ensd:
            self.generators = make_generators([s + ensd for s in seeds], source=source, device=device, skip_first=False)
        else:
            self.generators = make_generators(seeds, source=source, device=device, shape=self.shape)

    def __call__(self, sigma=None, sigma_next=None) -> torch.Tensor:
        draws = [_randn(self.shape, g, self.draw_device) for g in self.generators]
        return torch.stack(draws).to(self.device)


# torchsde warns when a query lands a float rounding outside the tree's interval (sigma_min as float32 vs float64);
# the answer is right and A1111's console shows the same noise
warnings.filterwarnings("ignore", message=r"Should have (ta>=t0|tb<=t1)", category=UserWarning)


class BrownianNoise:
    """SDE noise that depends on the noise levels, not on the order of the draws: one Brownian tree per image,
    seeded with the image's seed (so an image does not depend on its batch), as k-diffusion's
    BrownianTreeNoiseSampler with A1111's per-image seeds. __call__(sigma, sigma_next) gives unit noise."""

    def __init__(self, like: torch.Tensor, sigma_min, sigma_max, seeds, *, source: str = "CPU"):
        import torchsde  # late: only the SDE samplers need it

        self.device = like.device
        draw = _draw_device(source, like.device) or torch.device("cpu")  # NV: torchsde's trees on the CPU
        t0, t1 = sorted((float(sigma_min), float(sigma_max)))
        self.sign = 1 if float(sigma_min) < float(sigma_max) else -1
        w0 = torch.zeros(like.shape[1:], dtype=like.dtype, device=draw)
        start, end = torch.tensor(t0, device=draw), torch.tensor(t1, device=draw)
        self.trees = [torchsde.BrownianTree(start, w0, end, entropy=int(seed)) for seed in seeds]
        self.draw = draw

    def __call__(self, sigma, sigma_next) -> torch.Tensor:
        a, b = torch.as_tensor(sigma).to(self.draw), torch.as_tensor(sigma_next).to(self.draw)
        sign = 1
        if not a < b:
            a, b, sign = b, a, -1
        w = torch.stack([tree(a, b) for tree in self.trees]) * (self.sign * sign)
        return (w / (b - a).abs().sqrt()).to(self.device)
