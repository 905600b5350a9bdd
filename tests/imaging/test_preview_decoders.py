"""Live-preview pictures: the cheap linear map is the published matrix maths, TAESD's original file loads into
diffusers' AutoencoderTiny decoder and decodes exactly as diffusers does, a missing file falls back to the cheap
picture (said once), and "Full" is still the VAE's decode."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import AutoencoderTiny

from sdui.imaging.preview_decoders import (
    PreviewDecoder,
    cheap_preview,
    decoder_state_dict,
    find_taesd,
    load_taesd_decoder,
)
from sdui.imaging.vae import JobVae, to_pil
from tests.fixtures.ldm_unet_vae import tiny_vae

# the published factors, written out again here: rows = latent channels, columns = R, G, B
KETURN_SD1 = [[0.298, 0.207, 0.208], [0.187, 0.286, 0.173], [-0.158, 0.189, 0.264], [-0.184, -0.271, -0.473]]
SDXL = [[0.3651, 0.4232, 0.4341], [-0.2533, -0.0042, 0.1068], [0.1076, 0.1111, -0.0362], [-0.3165, -0.2492, -0.2188]]
SDXL_BIAS = [0.1084, -0.0175, -0.0011]


def known_latent() -> torch.Tensor:
    """(1, 4, 2, 3): each channel alone at one cell, a mixture at another, zero, and a value past the clip."""
    z = torch.zeros(1, 4, 2, 3)
    for c in range(4):
        z[0, c, c // 3, c % 3] = 1.0
    z[0, :, 1, 1] = torch.tensor([0.5, -0.5, 1.0, -1.0])
    z[0, :, 1, 2] = torch.tensor([8.0, 0.0, 0.0, 0.0])  # R, G, B > 1: clipped to white
    return z


def by_hand(z: torch.Tensor, factors, bias=(0.0, 0.0, 0.0)) -> np.ndarray:
    """HWC uint8 of rgb = sum_c z_c * row_c + bias, mapped from [-1, 1] to 0..255."""
    lat = z[0].permute(1, 2, 0).double().numpy()  # h, w, c
    rgb = lat @ np.array(factors, dtype=np.float64) + np.array(bias)
    return np.round(np.clip(rgb / 2 + 0.5, 0, 1) * 255).astype(np.uint8)


@pytest.mark.parametrize("family, factors, bias", [("sd", KETURN_SD1, (0, 0, 0)), ("sdxl", SDXL, SDXL_BIAS)])
def test_approx_cheap_is_the_published_matrix_maths(family, factors, bias):
    z = known_latent()
    small = np.asarray(cheap_preview(z, family, scale=1))
    assert np.abs(small.astype(int) - by_hand(z, factors, bias)).max() <= 1  # float32 vs float64 rounding at .5
    assert tuple(small[1, 2]) == (255, 255, 255)


def test_approx_cheap_is_an_rgb_picture_of_the_image_size_of_the_first_latent():
    z = torch.randn(3, 4, 5, 7)
    z[0] = 0.0  # the first image's latents: exactly mid grey everywhere
    image = cheap_preview(z, "sd", scale=8)
    assert image.mode == "RGB" and image.size == (56, 40)
    assert set(np.asarray(image).reshape(-1).tolist()) == {128}  # round(0.5 * 255); the others are not shown
    varied = np.asarray(cheap_preview(torch.randn(1, 4, 5, 7), "sd", scale=8))
    assert len(np.unique(varied.reshape(-1, 3), axis=0)) > 35  # enlarged smoothly, not a few flat colours


# ---- TAESD -------------------------------------------------------------------------------------------------------
def random_taesd(seed: int = 0) -> AutoencoderTiny:
    """diffusers' AutoencoderTiny with its real (TAESD's) default config and random weights."""
    torch.manual_seed(seed)
    return AutoencoderTiny().eval()


def to_original_layout(taesd: AutoencoderTiny) -> dict[str, torch.Tensor]:
    """The decoder's state dict as madebyollin's taesd_decoder.pth holds it: one nn.Sequential whose index 0 is the
    input clamp, so diffusers' "layers.N.x" is "{N+1}.x" there (written independently of the code under test)."""
    out = {}
    for key, value in taesd.decoder.state_dict().items():
        prefix, index, rest = key.split(".", 2)
        assert prefix == "layers"
        out[f"{int(index) + 1}.{rest}"] = value.clone()
    return out


def holder(vae) -> JobVae:
    return JobVae(SimpleNamespace(vae=vae, vae_overflows=False))


@pytest.fixture(scope="module")
def sd_vae():
    return tiny_vae("sd1")


def test_the_original_taesd_file_decodes_as_diffusers_autoencoder_tiny(tmp_path, sd_vae):
    taesd = random_taesd()
    folder = tmp_path / "models" / "VAE-approx"
    folder.mkdir(parents=True)
    torch.save(to_original_layout(taesd), folder / "taesd_decoder.pth")
    assert find_taesd([folder], "sd") == folder / "taesd_decoder.pth"
    assert find_taesd([folder], "sdxl") is None  # SDXL's latents need taesdxl_decoder.pth

    z = torch.randn(2, 4, 8, 6, generator=torch.Generator().manual_seed(1))
    decoder = load_taesd_decoder(folder / "taesd_decoder.pth")
    with torch.no_grad():
        expected = taesd.decode(z).sample
        assert torch.allclose(decoder(z), expected, atol=1e-5)
    assert load_taesd_decoder(folder / "taesd_decoder.pth") is decoder  # loaded once

    picture = PreviewDecoder("TAESD", holder(sd_vae), family="sd", scale=8, folders=[folder])(z)
    assert picture.size == (48, 64)
    assert np.abs(np.asarray(picture, int) - np.asarray(to_pil(expected[:1])[0], int)).max() <= 1
    approx_nn = PreviewDecoder("Approx NN", holder(sd_vae), family="sd", scale=8, folders=[folder])(z)
    assert approx_nn.tobytes() == picture.tobytes()  # A1111's network is not built in: TAESD stands in


def test_diffusers_layout_and_sdxl_file_names_are_found(tmp_path, sd_vae):
    taesd = random_taesd(seed=2)
    taesd.save_pretrained(tmp_path / "taesdxl")  # the Hugging Face repo madebyollin/taesdxl's layout
    path = find_taesd([tmp_path / "elsewhere", tmp_path], "sdxl")
    assert path == tmp_path / "taesdxl" / "diffusion_pytorch_model.safetensors"
    z = torch.randn(1, 4, 4, 4)
    with torch.no_grad():
        assert torch.allclose(load_taesd_decoder(path)(z), taesd.decode(z).sample, atol=1e-5)


def test_the_key_renaming_refuses_other_files():
    with pytest.raises(ValueError, match="not a key of TAESD"):
        decoder_state_dict({"encoder.conv_in.weight": torch.zeros(1)})


def test_without_the_file_taesd_falls_back_to_cheap_and_says_once_where_to_put_it(tmp_path, sd_vae, caplog):
    folder = tmp_path / "VAE-approx"
    z = torch.randn(1, 4, 8, 8)
    with caplog.at_level(logging.WARNING, logger="sdui.imaging.preview_decoders"):
        for method in ("TAESD", "Approx NN", "TAESD"):
            picture = PreviewDecoder(method, holder(sd_vae), family="sd", scale=8, folders=[folder])(z)
            assert picture.tobytes() == cheap_preview(z, "sd", 8).tobytes()
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "taesd_decoder.pth" in said[0] and str(folder) in said[0]


def test_a_file_that_is_not_taesds_decoder_falls_back_to_cheap(tmp_path, sd_vae, caplog):
    torch.save(random_taesd().encoder.state_dict(), tmp_path / "taesd_decoder.pth")  # the encoder, misnamed
    z = torch.randn(1, 4, 8, 8)
    with caplog.at_level(logging.WARNING, logger="sdui.imaging.preview_decoders"):
        picture = PreviewDecoder("TAESD", holder(sd_vae), family="sd", scale=8, folders=[tmp_path])(z)
    assert picture.tobytes() == cheap_preview(z, "sd", 8).tobytes()
    assert "is not TAESD's decoder" in caplog.text


def test_full_is_still_the_vae_decode(sd_vae):
    z = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    picture = PreviewDecoder("Full", holder(sd_vae), family="sd", scale=8)(z)
    with torch.no_grad():
        expected = to_pil(sd_vae.decode(z[:1] / sd_vae.config.scaling_factor).sample)[0]
    assert picture.tobytes() == expected.tobytes()
