"""Saving (names, metadata, atomicity, concurrency), grids, reading metadata back, base64 in and out."""

import base64
import datetime
import io
import os
import threading

import pytest
from PIL import Image

from sdui.errors import InvalidRequestError
from sdui.imaging import filenames
from sdui.imaging.encoding import decode_base64_image, image_to_png_bytes
from sdui.imaging.filenames import apply_filename_pattern, sanitize_filename_part, standard_tags
from sdui.imaging.grids import image_grid
from sdui.imaging.pnginfo import read_info_from_image
from sdui.imaging.saving import SaveOptions, save_image

DAY = datetime.date(2024, 7, 27)
INFOTEXT = 'a fox, "quoted" ü 狐 😀\nsecond line\nNegative prompt: blur\nSteps: 20, Sampler: Euler a, Seed: 123'


def tiny(color="red", size=(8, 6)):
    return Image.new("RGB", size, color)


def files_in(folder):
    return sorted(p.name for p in folder.iterdir())


def test_naming_sequence_in_dated_folder(tmp_path):
    first = save_image(tiny(), tmp_path, seed=123, infotext=INFOTEXT, date=DAY)
    second = save_image(tiny(), tmp_path, seed=124, infotext=INFOTEXT, date=DAY)
    assert first == tmp_path / "2024-07-27" / "00000-123.png"
    assert second == tmp_path / "2024-07-27" / "00001-124.png"
    assert files_in(tmp_path / "2024-07-27") == ["00000-123.png", "00001-124.png"]


def test_counter_continues_from_largest_number(tmp_path):
    folder = tmp_path / "2024-07-27"
    folder.mkdir()
    for name in ("00007-1.png", "00041-999.png", "notes.txt", "grid-0100.png", ".1a2b.tmp", "00003.png"):
        (folder / name).write_bytes(b"x")
    assert save_image(tiny(), tmp_path, seed=5, infotext=None, date=DAY).name == "00042-5.png"


def test_parameters_chunk_reads_back_exactly(tmp_path):
    im = tiny()
    im.info["extras"] = "upscaled"
    path = save_image(im, tmp_path, seed=123, infotext=INFOTEXT, date=DAY)
    with Image.open(path) as saved:
        assert saved.info["parameters"] == INFOTEXT
        assert saved.info["extras"] == "upscaled"  # other text entries kept
        assert saved.size == (8, 6) and saved.getpixel((0, 0)) == (255, 0, 0)
        assert read_info_from_image(saved) == (INFOTEXT, {"extras": "upscaled"})
    latin = "plain text, Steps: 1"  # Latin-1 text goes as tEXt
    path = save_image(tiny(), tmp_path, seed=1, infotext=latin, date=DAY)
    assert b"tEXtparameters\x00" + latin.encode() in path.read_bytes()


def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    def broken_png_writer(image, fp, filename):
        fp.write(b"\x89PNG\r\n\x1a\n half an image")
        raise OSError("disk full")

    monkeypatch.setitem(Image.SAVE, "PNG", broken_png_writer)
    with pytest.raises(OSError, match="disk full"):
        save_image(tiny(), tmp_path, seed=1, infotext=INFOTEXT, date=DAY)
    assert files_in(tmp_path / "2024-07-27") == []  # no image, no temp file


def test_concurrent_saves_get_distinct_numbers(tmp_path):
    workers, per_worker = 6, 3
    barrier = threading.Barrier(workers)
    paths, errors = [], []

    def work(k):
        barrier.wait()
        try:
            for j in range(per_worker):
                paths.append(save_image(tiny(), tmp_path, seed=k * 10 + j, infotext=f"seed {k * 10 + j}", date=DAY))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    names = files_in(tmp_path / "2024-07-27")
    assert len(names) == len(set(paths)) == workers * per_worker
    assert sorted(n[:5] for n in names) == [f"{i:05}" for i in range(workers * per_worker)]
    for p in paths:  # each file holds its own image's text
        with Image.open(p) as im:
            assert im.info["parameters"] == f"seed {p.stem.split('-')[1]}"


def test_never_overwrites_when_a_name_was_taken_meanwhile(tmp_path, monkeypatch):
    # another process saved between our folder scan and our write: we must take the next number, not overwrite
    first = save_image(tiny("blue"), tmp_path, seed=7, infotext="first", date=DAY)
    from sdui.imaging import saving

    monkeypatch.setattr(saving, "next_sequence_number", lambda folder, basename="": 0)
    second = save_image(tiny("green"), tmp_path, seed=7, infotext="second", date=DAY)
    assert (first.name, second.name) == ("00000-7.png", "00001-7.png")
    with Image.open(first) as a, Image.open(second) as b:
        assert (a.info["parameters"], b.info["parameters"]) == ("first", "second")


def test_jpeg_and_webp_exif_user_comment(tmp_path):
    for fmt in ("jpg", "webp"):
        im = Image.new("RGBA", (8, 8), (0, 0, 255, 128))
        path = save_image(im, tmp_path, seed=9, infotext=INFOTEXT, date=DAY, options=SaveOptions(fmt=fmt))
        assert path.suffix == f".{fmt}"
        with Image.open(path) as saved:
            info, items = read_info_from_image(saved)
        assert info == INFOTEXT and items["exif comment"] == INFOTEXT
    with pytest.raises(InvalidRequestError, match="Cannot save images as 'bmp'"):
        save_image(tiny(), tmp_path, seed=1, infotext=None, options=SaveOptions(fmt="bmp"))


def test_gif_comment(tmp_path):
    path = save_image(tiny(), tmp_path, seed=3, infotext=INFOTEXT, date=DAY, options=SaveOptions(fmt="gif"))
    with Image.open(path) as saved:
        assert read_info_from_image(saved)[0] == INFOTEXT


def test_pattern_tags_and_sanitising(tmp_path):
    path = save_image(
        tiny(),
        tmp_path,
        seed=5,
        infotext=None,
        date=DAY,
        prompt='a cat: "x" / y?',
        tags={"steps": 20},
        options=SaveOptions(pattern="[seed]-[prompt_spaces]-[steps]"),
    )
    assert path.name == "00000-5-a cat_ _x_ _ y_-20.png"
    path = save_image(
        tiny(),
        tmp_path,
        seed=5,
        infotext=None,
        date=DAY,
        prompt="Hello, big world!",
        options=SaveOptions(pattern="[prompt_words]-[unknown]"),
    )
    assert path.name == "00001-Hello big world-[unknown].png"
    path = save_image(
        tiny(), tmp_path, seed=5, infotext=None, options=SaveOptions(save_to_dirs=False, pattern="[none]")
    )
    assert path == tmp_path / "00000.png"
    assert sanitize_filename_part(" a:b. ", replace_spaces=False) == "a_b"
    assert sanitize_filename_part("a b\tc") == "a_b_c"
    assert len(sanitize_filename_part("x" * 300)) == 128
    tags = standard_tags(seed=1, date=DAY, extra={"batch_number": filenames.SKIP_PREVIOUS_TEXT})
    assert apply_filename_pattern("[seed]-[batch_number]-[date]", tags) == "1-2024-07-27"
    assert apply_filename_pattern("[datetime<%Y>]", tags) == str(datetime.date.today().year)


def test_folder_pattern_cannot_escape(tmp_path):
    with pytest.raises(InvalidRequestError, match="outside"):
        save_image(tiny(), tmp_path / "out", seed=1, infotext=None, options=SaveOptions(dir_pattern="../elsewhere"))
    assert not (tmp_path / "elsewhere").exists()


def test_no_number_replaces_or_suffixes(tmp_path):
    a = save_image(
        tiny("red"),
        tmp_path,
        seed=4,
        infotext="a",
        options=SaveOptions(pattern="[seed]", add_number=False, save_to_dirs=False),
    )
    b = save_image(
        tiny("blue"),
        tmp_path,
        seed=4,
        infotext="b",
        options=SaveOptions(pattern="[seed]", add_number=False, save_to_dirs=False),
    )
    c = save_image(
        tiny("blue"),
        tmp_path,
        seed=4,
        infotext="c",
        options=SaveOptions(pattern="[seed]", add_number=False, save_to_dirs=False, replace_existing=False),
    )
    assert (a.name, b.name, c.name) == ("4.png", "4.png", "4-1.png")
    with Image.open(a) as im:
        assert im.info["parameters"] == "b"


@pytest.mark.parametrize(
    "n,cols,rows", [(1, 1, 1), (2, 2, 1), (3, 2, 2), (4, 2, 2), (5, 3, 2), (6, 3, 2), (7, 3, 3), (8, 3, 3), (9, 3, 3)]
)
def test_grid_layout(n, cols, rows):
    colors = [(i * 20, 255 - i * 20, 7) for i in range(n)]
    grid = image_grid([Image.new("RGB", (8, 6), c) for c in colors])
    assert grid.size == (cols * 8, rows * 6)
    for i, c in enumerate(colors):
        assert grid.getpixel((i % cols * 8 + 4, i // cols * 6 + 3)) == c
    for empty in range(n, cols * rows):  # unfilled cells are white
        assert grid.getpixel((empty % cols * 8 + 4, empty // cols * 6 + 3)) == (255, 255, 255)


def test_grid_options_and_centering():
    imgs = [tiny("red", (8, 8)), tiny("blue", (4, 4))]
    grid = image_grid(imgs, rows=2)
    assert grid.size == (8, 16)
    assert grid.getpixel((4, 12)) == (0, 0, 255) and grid.getpixel((0, 8)) == (255, 255, 255)  # centred
    assert image_grid([tiny()] * 6, prevent_empty_spots=True).size == (3 * 8, 2 * 6)
    assert image_grid([tiny()] * 6, rows=0, batch_size=3).size == (2 * 8, 3 * 6)
    with pytest.raises(ValueError):
        image_grid([])


def test_grid_naming(tmp_path):
    grid = image_grid([tiny()] * 4)
    p1 = save_image(grid, tmp_path / "txt2img-grids", seed=None, infotext=INFOTEXT, date=DAY, basename="grid")
    p2 = save_image(grid, tmp_path / "txt2img-grids", seed=None, infotext=INFOTEXT, date=DAY, basename="grid")
    assert p1 == tmp_path / "txt2img-grids" / "2024-07-27" / "grid-0000.png"
    assert p2.name == "grid-0001.png"
    with Image.open(p1) as im:
        assert im.info["parameters"] == INFOTEXT and im.size == (16, 12)


def test_png_bytes_and_base64_round_trip():
    im = tiny("green")
    im.info["parameters"] = "old"
    data = image_to_png_bytes(im, INFOTEXT)
    assert data.startswith(b"\x89PNG")
    b64 = base64.b64encode(data).decode()
    for text in (b64, "data:image/png;base64," + b64, "  " + b64[:40] + "\n" + b64[40:].rstrip("=")):
        decoded = decode_base64_image(text)
        assert decoded.size == (8, 6) and decoded.getpixel((1, 1)) == (0, 128, 0)
        assert decoded.info["parameters"] == INFOTEXT
    assert Image.open(io.BytesIO(image_to_png_bytes(im))).info["parameters"] == "old"


@pytest.mark.parametrize(
    "bad",
    [
        "not an image at all!!",
        base64.b64encode(b"hello world").decode(),
        "",
        "data:image/png;base64,",
        "https://example.com/x.png",
        base64.b64encode(image_to_png_bytes(tiny()))[:60].decode(),
    ],
)
def test_bad_base64_is_invalid_request(bad):
    with pytest.raises(InvalidRequestError, match="^Invalid encoded image: "):
        decode_base64_image(bad)


def test_read_info_drops_encoding_details(tmp_path):
    path = tmp_path / "x.jpg"
    tiny().save(path, format="JPEG", dpi=(72, 72))
    with Image.open(path) as im:
        info, items = read_info_from_image(im)
    assert info is None and not {"dpi", "jfif", "jfif_version", "jfif_density", "jfif_unit"} & set(items)


def test_novelai_png_converted():
    im = tiny()
    im.info.update(
        {
            "Software": "NovelAI",
            "Description": "a cat",
            "Comment": '{"uc": "ugly", "steps": 28, "sampler": "k_euler", "scale": 11, "seed": 42}',
        }
    )
    with Image.open(io.BytesIO(image_to_png_bytes(im, None))) as png:
        info, items = read_info_from_image(png)
    assert info == (
        "a cat\nNegative prompt: ugly\nSteps: 28, Sampler: Euler, CFG scale: 11, Seed: 42, "
        "Size: 8x6, Clip skip: 2, ENSD: 31337"
    )
    assert items["Software"] == "NovelAI"


def test_temp_files_are_hidden_and_not_counted(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / ".0123abcd.tmp").write_bytes(b"")
    assert filenames.next_sequence_number(folder) == 0
    assert filenames.next_sequence_number(tmp_path / "missing") == 0
    os.makedirs(folder / "2024-07-27")  # dated sub-folders are not images
    assert filenames.next_sequence_number(folder) == 0
    (folder / "00009-1.png").write_bytes(b"")
    assert filenames.next_sequence_number(folder) == 10
