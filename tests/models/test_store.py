"""The model store: selection, RAM-cache LRU, one load per checkpoint under concurrency, hashing at load, errors.

The loader here is a small real function (reads the file, returns an object); the store is what is under test.
The store with the real loader (sdui.models.loading) is exercised elsewhere.
"""
import hashlib
import random
import threading
import time
from dataclasses import dataclass, field

import pytest

from sdui.app.flags import parse_flags
from sdui.app.options import Options
from sdui.app.paths import DataPaths
from sdui.errors import CheckpointError, NoCheckpointError
from sdui.models.hashes import HashCache
from sdui.models.store import ModelStore
from tests.helpers import CPU32

SIZE = 0x110000 + 7


@dataclass
class TinyModel:
    path: str
    digest: str
    checkpoint: object = None
    unet: object = None
    vae: object = None
    text_encoders: list = field(default_factory=list)
    depth_estimator: object = None


@dataclass
class CountingLoader:
    delay: float = 0.0
    loads: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, path, policy):
        with self.lock:
            self.loads.append(path.rsplit("/", 1)[-1])
        time.sleep(self.delay)
        return TinyModel(path, hashlib.md5(open(path, "rb").read()).hexdigest())


def make_paths(tmp_path, *argv) -> DataPaths:
    return DataPaths.from_flags(parse_flags(list(argv), environ={}), tmp_path)


def add_ckpt(paths, name, seed) -> bytes:
    path = paths.sd_models_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    data = random.Random(seed).randbytes(SIZE)
    path.write_bytes(data)
    return data


@pytest.fixture
def setup(tmp_path):
    paths = make_paths(tmp_path)
    paths.ensure_dirs()
    for i, name in enumerate(("a.safetensors", "b.safetensors", "c.ckpt")):
        add_ckpt(paths, name, i)
    return paths


def make_store(paths, loader=None, options=None, **kw):
    kw.setdefault("hash_cache", HashCache(paths.cache_dir))
    if options is not None:
        kw["preferred"] = lambda: options.get("sd_model_checkpoint") or None
    return ModelStore(paths, CPU32, loader or CountingLoader(), **kw)


def test_lru_with_cache_size_1(setup):
    loader = CountingLoader()
    store = make_store(setup, loader, cache_size=1)
    a = store.get("a.safetensors")
    assert store.get("a") is a and loader.loads == ["a.safetensors"]
    store.get("b")
    store.get("a")
    assert loader.loads == ["a.safetensors", "b.safetensors", "a.safetensors"]
    assert store.current.checkpoint.name == "a.safetensors"


def test_lru_with_cache_size_2(setup):
    loader = CountingLoader()
    store = make_store(setup, loader, cache_size=2)
    a = store.get("a")
    store.get("b")
    assert store.get("a") is a                      # cached: b is now least recently used
    store.get("c")                                  # evicts b
    assert store.get("a") is a
    store.get("b")                                  # loaded again; evicts c
    store.get("a")
    store.get("c")
    assert loader.loads == ["a.safetensors", "b.safetensors", "c.ckpt", "b.safetensors", "c.ckpt"]


def test_shrinking_the_cache_evicts_at_once(setup):
    loader = CountingLoader()
    store = make_store(setup, loader, cache_size=2)
    assert store.cache_size == 2
    store.get("a")
    b = store.get("b")
    store.get("a")
    store.cache_size = 1                             # shrinking evicts the least recently used now
    store.get("a")
    store.get("b")
    assert loader.loads == ["a.safetensors", "b.safetensors", "b.safetensors"]
    assert store.current is not b
    store.cache_size = 0                             # the loaded model always stays
    assert store.cache_size == 1


def test_concurrent_get_loads_once(setup):
    loader = CountingLoader(delay=0.3)
    store = make_store(setup, loader)
    barrier = threading.Barrier(4)
    results = []

    def worker():
        barrier.wait()
        results.append(store.get("b.safetensors"))
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loader.loads == ["b.safetensors"]
    assert len(results) == 4 and all(r is results[0] for r in results)


def test_hashing_at_load_gives_the_title_its_hash(setup):
    store = make_store(setup)
    data = (setup.sd_models_dir / "b.safetensors").read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    assert "b.safetensors" in store.titles()                 # not hashed before loading
    model = store.get("b")
    assert model.digest == hashlib.md5(data).hexdigest()     # the loader got the right file
    info = model.checkpoint
    assert info is store.current_info and info.filename == str(setup.sd_models_dir / "b.safetensors")
    assert info.sha256 == sha and info.title == f"b.safetensors [{sha[:10]}]"
    assert f"b.safetensors [{sha[:10]}]" in store.titles()
    # the refreshed listing keeps the hashed title (same object as the loaded model's)
    assert store.refresh()[1] is info
    entry = {e["title"]: e for e in store.api_list()}[info.title]
    assert entry["hash"] == sha[:10] and entry["sha256"] == sha and entry["model_name"] == "b"


def test_no_hashing(setup):
    store = make_store(setup, no_hashing=True)
    model = store.get("a")
    assert model.checkpoint.sha256 is None and model.checkpoint.title == "a.safetensors"
    assert not (setup.cache_dir / "hashes.json").exists()


def test_select_uses_setting_then_current_then_first(setup, caplog):
    opts = Options()
    store = make_store(setup, options=opts)
    assert store.select().name == "a.safetensors"            # nothing set: the first
    opts.set("sd_model_checkpoint", "c.ckpt")
    assert store.select().name == "c.ckpt"
    store.get()
    assert store.current.checkpoint.name == "c.ckpt"
    opts.data["sd_model_checkpoint"] = "deleted.safetensors [0123456789]"
    assert store.select().name == "c.ckpt"                   # stale setting: keep what is loaded
    assert "'deleted.safetensors [0123456789]' from settings not found" in caplog.text


def test_unknown_name_is_a_checkpoint_error(setup):
    store = make_store(setup)
    with pytest.raises(CheckpointError) as exc:
        store.get("nope.safetensors")
    assert "Checkpoint 'nope.safetensors' not found. Known checkpoints: a.safetensors, b.safetensors, c.ckpt" \
        in exc.value.message
    assert "refresh" in exc.value.message


def test_no_checkpoint_error_names_the_folders(tmp_path):
    extra = tmp_path / "my ckpts"
    paths = make_paths(tmp_path, "--ckpt-dir", str(extra))
    paths.ensure_dirs()
    store = make_store(paths)
    with pytest.raises(NoCheckpointError) as exc:
        store.get()
    assert exc.value.message == (f"No checkpoint found. Put a .safetensors or .ckpt file into {extra} or "
                                 f"{tmp_path / 'models' / 'Stable-diffusion'}, then press refresh.")
    assert exc.value.status_code == 409
    # a file dropped in afterwards is found without an explicit refresh
    add_ckpt(paths, "late.safetensors", 9)
    assert store.get().checkpoint.name == "late.safetensors"


def test_refresh_finds_new_files(setup):
    store = make_store(setup)
    assert len(store.checkpoints) == 3
    add_ckpt(setup, "sub/d.safetensors", 5)
    assert len(store.checkpoints) == 3
    assert [i.name for i in store.refresh()] == ["a.safetensors", "b.safetensors", "c.ckpt", "sub/d.safetensors"]
    assert store.get("sub_d").checkpoint.name == "sub/d.safetensors"


def test_load_in_background_and_unload(setup):
    loader = CountingLoader(delay=0.1)
    store = make_store(setup, loader)
    thread = store.load_in_background("c")
    assert isinstance(thread, threading.Thread)
    thread.join(timeout=30)
    assert store.current.checkpoint.name == "c.ckpt" and store.background_error is None
    store.unload()
    assert store.current is None and store.current_info is None
    store.get("c")
    assert loader.loads == ["c.ckpt", "c.ckpt"]


def test_background_load_failure_is_kept_not_raised(tmp_path, caplog):
    paths = make_paths(tmp_path)
    paths.ensure_dirs()
    store = make_store(paths)
    store.load_in_background().join(timeout=30)
    assert isinstance(store.background_error, NoCheckpointError)
    assert "No checkpoint found" in caplog.text

    add_ckpt(paths, "bad.safetensors", 1)

    def broken_loader(path, policy):
        raise CheckpointError(f"{path} is truncated; download it again")
    store = make_store(paths, broken_loader)
    store.load_in_background().join(timeout=30)
    assert isinstance(store.background_error, CheckpointError)
    assert store.current is None


@pytest.mark.skipif(not __import__("os").path.exists("/dev/nvidiactl"), reason="needs a CUDA GPU")
def test_cached_models_wait_on_the_cpu(setup):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from sdui.devices import DevicePolicy
    from sdui.models.sd_model import SDModel
    policy = DevicePolicy(torch.device("cuda"), torch.float16, torch.float32)

    def loader(path, policy):
        def part():
            return torch.nn.Linear(4, 4).to(policy.device)
        return SDModel(arch="sd1", variant="base", prediction_type="epsilon", unet=part(), vae=part(),
                       text_encoders=[part()])
    store = ModelStore(setup, policy, loader, hash_cache=None, cache_size=2, no_hashing=True)

    def where(model):
        return {p.weight.device.type for p in (model.unet, model.vae, *model.text_encoders)}
    a = store.get("a")
    b = store.get("b")
    assert where(b) == {"cuda"} and where(a) == {"cpu"}
    assert store.get("a") is a
    assert where(a) == {"cuda"} and where(b) == {"cpu"}
