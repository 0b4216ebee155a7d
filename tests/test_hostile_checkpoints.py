"""Hostile checkpoints: every reader fails fast, in bounded memory, with the package's own one-line error.

Each hostile file is generated here from pickle opcodes (a valid minimal network pickle or torch file
plus some bytes): memory bombs (bytearray(n) global and opcode, a stride-0 tensor declaring
16384 x 16384 elements over one float, storages and byte strings larger than the file, a 2^31 memo
index, repeated set(list) copies, a legacy .pt storage of 2^31 floats, a deflate bomb), cost bombs
(shared sub-lists and shared `_modules` records 10-40 levels deep, 30000 dict keys with one hash), lists
nested 5000 deep, and code execution. They are loaded in one subprocess after a normal load, which
reports for each file the error, the seconds and the peak RSS (``ru_maxrss``); the test asserts the
package's error naming the file, < 5 s, < 256 MB above the normal load's peak, and no marker file.
Also: loaders never pass on advice to load unsafely (defect 3), and the converter scripts answer
refused, empty and random files and a misspelled flag with one line and a non-zero exit.
"""
import json
import os
import pathlib
import pickle
import struct
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from styleclip_jax.checkpoints import nvlabs, safe_pickle, torch_pt
from styleclip_jax.errors import CheckpointFormatError, StyleClipError, UnsafeCheckpointError

REPO = pathlib.Path(__file__).resolve().parents[1]
MB = 1 << 20
UNSAFE_ADVICE = ("weights_only set to False", "weights_only=False", "allow_pickle", "add_safe_globals",
                 "safe_globals", "trusted source", "if you trust")


# ----------------------------------------------------------------------------------------------
# A minimal pickle-opcode writer (protocol 2 opcodes) with raw escapes and memo references


class Call:
    def __init__(self, module, name, *args):
        self.module, self.name, self.args = module, name, args


class Raw(bytes):
    """Opcodes inserted as they are."""


def enc(obj) -> bytes:
    if isinstance(obj, Raw):
        return bytes(obj)
    if isinstance(obj, Call):
        return b"c" + f"{obj.module}\n{obj.name}\n".encode() + enc(tuple(obj.args)) + b"R"
    if obj is None:
        return b"N"
    if obj is True or obj is False:
        return b"\x88" if obj else b"\x89"
    if isinstance(obj, int):
        return b"J" + struct.pack("<i", obj) if -2 ** 31 <= obj < 2 ** 31 else b"\x8a\x08" + struct.pack("<q", obj)
    if isinstance(obj, str):
        raw = obj.encode()
        return b"X" + struct.pack("<I", len(raw)) + raw
    if isinstance(obj, bytes):
        return b"B" + struct.pack("<I", len(obj)) + obj
    if isinstance(obj, tuple):
        return b"(" + b"".join(enc(v) for v in obj) + b"t"
    if isinstance(obj, list):
        return b"]" + (b"(" + b"".join(enc(v) for v in obj) + b"e" if obj else b"")
    if isinstance(obj, dict):
        return b"}" + (b"(" + b"".join(enc(k) + enc(v) for k, v in obj.items()) + b"u" if obj else b"")
    raise TypeError(obj)


def put(i: int) -> Raw:
    return Raw(b"r" + struct.pack("<I", i))


def get(i: int) -> Raw:
    return Raw(b"j" + struct.pack("<I", i))


def storage_blob(values, *, declared=None) -> bytes:
    """A legacy torch.save of one FloatStorage, as torch.Storage.__reduce__ writes it."""
    values = np.asarray(values, dtype="<f4")
    n = values.size if declared is None else declared
    header = (pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
              + pickle.dumps({"protocol_version": 1001, "little_endian": True,
                              "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2))
    obj = b"\x80\x02(" + enc("storage") + b"ctorch\nFloatStorage\n" + enc("0") + enc("cpu") + enc(n) + b"NtQ."
    return header + obj + pickle.dumps(["0"], protocol=2) + struct.pack("<q", n) + values.tobytes()


def tensor(blob, size, stride, offset=0):
    return Call("torch._utils", "_rebuild_tensor_v2", Call("torch.storage", "_load_from_bytes", blob), offset,
                tuple(size), tuple(stride), False, Call("collections", "OrderedDict"))


def module(params=None, modules=None, kwargs=None):
    meta = {"type": "class", "version": 6, "module_src": "", "class_name": "Generator",
            "state": {"_parameters": params or {}, "_buffers": {}, "_modules": modules or {},
                      "_init_args": (), "_init_kwargs": Call("dnnlib.util", "EasyDict", kwargs or {"z_dim": 4})}}
    return Call("torch_utils.persistence", "_reconstruct_persistent_obj", meta)


def network_pickle(snapshot: dict, proto=b"\x80\x02") -> bytes:
    return proto + enc(snapshot) + b"."


def _shared_lists(depth: int) -> Raw:
    """L0 = []; L(k) = [L(k-1), L(k-1)]: 40 levels are 2^40 values if expanded, ~400 bytes here."""
    out = b"]"
    for k in range(1, depth + 1):
        out = b"](" + out + put(k - 1) + get(k - 1) + b"e"  # [L(k-1) written once, then a memo reference]
    return Raw(out)


def _shared_modules(depth: int) -> Raw:
    """A module record whose `_modules` holds the previous level's record twice, `depth` levels."""
    out = enc(module()) + put(1000)
    for k in range(1, depth + 1):
        out += b"0" + enc(module(modules={"a": get(1000 + k - 1), "b": get(1000 + k - 1)})) + put(1000 + k)
    return Raw(out)


def _colliding_dict(n: int) -> bytes:
    """A dict of n int keys i * (2^61 - 1), which all hash to 0: inserting them costs n^2 / 2 comparisons
    (20000 keys: 3 s in torch.load; 1e6 keys, a 12 MB file: hours)."""
    m = (1 << 61) - 1
    return b"}(" + b"".join(b"\x8a\x0a" + (i * m).to_bytes(10, "little") + b"N" for i in range(1, n + 1)) + b"u"


def hostile_pickles(tmp: pathlib.Path, marker: pathlib.Path) -> dict:
    """{name: (file, regex the error must match)}; each file is a network pickle (see module docstring)."""
    evil = Call("posix", "system", f"touch {marker}")
    good = module({"w": tensor(storage_blob(np.arange(4)), (2, 2), (2, 1))})
    ints = b"](" + b"K\x01" * 30000 + b"e" + put(0)  # a list of 30000 ints, then 1000 x set(that list)
    set_copies = Raw(ints + b"0(" + b"".join(enc(Call("builtins", "set", get(0))) for _ in range(1000)) + b"l")
    cases = {
        "bytearray_global": (network_pickle({"x": Call("builtins", "bytearray", 2 ** 31), "G_ema": good,
                                             "evil": evil}), r"builtins\.bytearray"),
        "bytearray8_opcode": (network_pickle({"x": Raw(b"\x96" + struct.pack("<Q", 2 ** 31)), "G_ema": good,
                                              "evil": evil}, proto=b"\x80\x05"), "bytearrays"),
        "stride0_tensor": (network_pickle({"G_ema": module({"w": tensor(storage_blob([1.0]), (16384, 16384),
                                                                        (0, 0))}), "evil": evil}),
                           r"declares 268435456 elements but its storage holds 1"),
        "storage_larger_than_file": (network_pickle({"G_ema": module({"w": tensor(storage_blob([1.0], declared=2 ** 33),
                                                                                  (4,), (1,))}), "evil": evil}),
                                     r"declares 8589934592 elements"),
        "bytes_larger_than_file": (network_pickle({"x": Raw(b"\x8e" + struct.pack("<Q", 2 ** 40)), "evil": evil},
                                                  proto=b"\x80\x04"), r"declares 1099511627776 bytes"),
        "set_copies": (network_pickle({"x": set_copies, "evil": evil}), r"more than the file can hold"),
        "memo_index_2e31": (network_pickle({"x": Raw(b"]r" + struct.pack("<I", 2 ** 31 - 1)), "evil": evil}),
                            r"posix\.system"),
        "shared_lists_40_deep": (network_pickle({"G_ema": module(kwargs={"z_dim": 4, "x": _shared_lists(40)})}),
                                 r"nested more than 32 levels"),
        "shared_lists_20_deep": (network_pickle({"G_ema": module(kwargs={"z_dim": 4, "x": _shared_lists(20)})}),
                                 r"would expand to more than 100000 values"),
        "shared_modules_40_deep": (network_pickle({"G_ema": _shared_modules(40)}),
                                   r"nested more than 100 levels|same record"),
        "shared_modules_10_deep": (network_pickle({"G_ema": _shared_modules(10)}), r"same record as module"),
        "list_5000_deep": (network_pickle({"G_ema": module(kwargs={"z_dim": 4, "x": Raw(b"]" * 5000 + b"a" * 4999)})}),
                           r"nested more than 100 levels"),
        "os_system": (network_pickle({"G_ema": module({"w": evil})}), r"posix\.system"),
        "colliding_dict_keys": (network_pickle({"x": Raw(_colliding_dict(30000)), "evil": evil}),
                                r"dict key or set item of type int"),
    }
    out = {}
    for name, (data, regex) in cases.items():
        path = tmp / f"{name}.pkl"
        path.write_bytes(data)
        out[name] = (path, regex)
    return out


def _torch_zip(path: pathlib.Path, data_pkl: bytes, base: pathlib.Path) -> pathlib.Path:
    """A torch zip checkpoint whose data.pkl is replaced (other records copied from ``base``)."""
    with zipfile.ZipFile(base) as z:
        entries = [(i.filename, z.read(i)) for i in z.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in entries:
            z.writestr(name, data_pkl if name.endswith("data.pkl") else data)
    return path


def hostile_pts(tmp: pathlib.Path, marker: pathlib.Path) -> dict:
    torch = pytest.importorskip("torch")
    base = tmp / "base.pt"
    torch.save({"x": 1}, base)
    expanded = tmp / "stride0.pt"
    torch.save({"g_ema": {"style.1.weight": torch.zeros(1).expand(16384, 16384)}, "latent_avg": torch.zeros(4)},
               expanded)
    bomb = tmp / "deflated.pt"
    torch.save({"g_ema": {"style.1.weight": torch.zeros(4)}}, bomb)
    with zipfile.ZipFile(bomb) as z:
        entries = [(i.filename, z.read(i)) for i in z.infolist()]
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            z.writestr(name, data + (b"\0" * (64 * MB) if name.endswith("/data/0") else b""))

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp / "evil_legacy.pt"
    evil.write_bytes(pickle.dumps({"g_ema": Evil()}, protocol=2))
    legacy = tmp / "legacy_8gb_storage.pt"  # a legacy torch.save whose storage declares 2^31 floats
    buf = __import__("io").BytesIO()
    torch.save({"g_ema": {"style.1.weight": torch.zeros(4)}}, buf, _use_new_zipfile_serialization=False)
    data = buf.getvalue()
    at = data.index(b"K\x04", data.index(b"X\x03\x00\x00\x00cpu"))
    legacy.write_bytes(data[:at] + b"\x8a\x05" + (2 ** 31).to_bytes(5, "little") + data[at + 2:])
    return {
        "pt_legacy_8gb_storage": (legacy, r"not a readable rosinality generator checkpoint"),
        "pt_stride0_tensor": (expanded, r"declares \(16384, 16384\) = 268435456 elements but its storage holds 1"),
        "pt_deflate_bomb": (bomb, r"zip archive whose entries declare"),
        "pt_list_5000_deep": (_torch_zip(tmp / "deep.pt", b"\x80\x02" + b"]" * 5000 + b"a" * 4999 + b".", base),
                              r"nested more than 100 levels"),
        "pt_shared_lists_40_deep": (_torch_zip(tmp / "shared.pt", b"\x80\x02}(X\x01\x00\x00\x00x"
                                               + _shared_lists(40) + b"u.", base), r"expected a rosinality"),
        "pt_os_system": (evil, r"posix\.system"),
        "pt_colliding_dict_keys": (_torch_zip(tmp / "collide.pt", b"\x80\x02" + _colliding_dict(30000) + b".", base),
                                   r"dict key or set item of type int"),
    }


_CHILD = textwrap.dedent("""
    import json, resource, sys, time
    cases = json.loads(sys.argv[1])
    import torch  # noqa: F401  (imported before the baseline, like every .pt load would)
    from styleclip_jax.checkpoints import stylegan2, torch_pt
    from styleclip_jax.errors import StyleClipError

    def peak():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def run(path):
        t = time.perf_counter()
        try:
            stylegan2.load_generator_arrays(path)
            err = None
        except StyleClipError as e:
            err = [type(e).__name__, str(e)]
        except BaseException as e:  # noqa: BLE001 - reported to the test
            err = ["UNCAUGHT " + type(e).__name__, str(e)[:2000]]
        return err, time.perf_counter() - t

    normal = {}
    for name, path in cases["normal"].items():
        err, seconds = run(path)
        normal[name] = {"err": err, "seconds": seconds}
    base = peak()
    # a regression must not take the machine down: 3 GB more address space than now, at most
    with open("/proc/self/status") as f:
        vm = [int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize")][0]
    resource.setrlimit(resource.RLIMIT_AS, (vm + (3 << 30), resource.RLIM_INFINITY))
    out = {}
    for name, path in cases["hostile"].items():
        err, seconds = run(path)
        out[name] = {"err": err, "seconds": seconds, "peak_over_normal": peak() - base}
    print(json.dumps({"normal": normal, "base_peak": base, "hostile": out}))
""")


@pytest.fixture(scope="module")
def hostile_results(tmp_path_factory, fixtures_dir):
    tmp = tmp_path_factory.mktemp("hostile")
    marker = tmp / "EXECUTED"
    files = {**hostile_pickles(tmp, marker), **hostile_pts(tmp, marker)}
    cases = {"normal": {"G.pkl": str(fixtures_dir / "stylegan2_ada" / "G.pkl")},
             "hostile": {name: str(path) for name, (path, _) in files.items()}}
    res = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(cases)], capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    return files, report, marker


def test_normal_load_in_the_child(hostile_results):
    _, report, _ = hostile_results
    assert report["normal"]["G.pkl"]["err"] is None


@pytest.mark.parametrize("name", ["bytearray_global", "bytearray8_opcode", "stride0_tensor",
                                  "storage_larger_than_file", "bytes_larger_than_file", "set_copies",
                                  "memo_index_2e31", "shared_lists_40_deep", "shared_lists_20_deep",
                                  "shared_modules_40_deep",
                                  "shared_modules_10_deep", "list_5000_deep", "os_system", "pt_stride0_tensor",
                                  "pt_deflate_bomb", "pt_list_5000_deep", "pt_shared_lists_40_deep", "pt_legacy_8gb_storage",
                                  "colliding_dict_keys", "pt_colliding_dict_keys",
                                  "pt_os_system"])
def test_hostile_file_fails_fast_small_and_clean(hostile_results, name):
    files, report, marker = hostile_results
    path, regex = files[name]
    r = report["hostile"][name]
    assert r["err"] is not None, f"{name} loaded"
    kind, msg = r["err"]
    assert kind in ("CheckpointFormatError", "UnsafeCheckpointError"), (kind, msg[:500])
    assert str(path) in msg and "\n" not in msg
    assert __import__("re").search(regex, msg), msg
    assert r["seconds"] < 5.0, r
    assert r["peak_over_normal"] < 256 * MB, r
    assert not marker.exists()
    if name.startswith("pt_") or "posix" in msg:
        assert not any(a in msg for a in UNSAFE_ADVICE), msg


def test_object_count_bound(monkeypatch):
    data = b"\x80\x02](" + b"]" * 2000 + b"e."
    assert len(safe_pickle.load(__import__("io").BytesIO(data), "mem", {}, "here", budget=MB)) == 2000
    monkeypatch.setattr(safe_pickle, "MAX_OBJECTS", 1000)
    with pytest.raises(CheckpointFormatError, match="mem: more than 1000 objects"):
        safe_pickle.load(__import__("io").BytesIO(data), "mem", {}, "here", budget=MB)


def test_build_and_newobj_only_on_data_stand_ins():
    """BUILD may not set attributes of an allowed function (e.g. its __defaults__ for later loads), NEWOBJ may not
    create an object without its constructor's checks."""
    def load(data):
        return safe_pickle.load(__import__("io").BytesIO(data), "mem", nvlabs.NETWORK_GLOBALS, "here", budget=MB)

    build_on_function = b"\x80\x02cnumpy.core.multiarray\nscalar\n}X\x0c\x00\x00\x00__defaults__(K\x01tsb."
    with pytest.raises(CheckpointFormatError, match="mem: unexpected state record for a function here"):
        load(build_on_function)
    with pytest.raises(CheckpointFormatError, match="unexpected object creation"):
        load(b"\x80\x02cnumpy\ndtype\n)\x81.")
    with pytest.raises(CheckpointFormatError, match="dict key or set item of type tuple"):
        load(b"\x80\x02}(K\x01K\x02\x86Nu.")


@pytest.mark.parametrize("zipped", [True, False])
def test_bounded_pt_reader_accepts_real_torch_saves(tmp_path, zipped):
    """The pre-scan and graph checks accept what torch.save writes for a training checkpoint (state dicts with
    _metadata, an argparse Namespace, optimizer state with int keys), in the zip and the legacy format."""
    torch = pytest.importorskip("torch")
    import argparse

    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Conv2d(2, 2, 3))
    obj = {"g_ema": m.state_dict(), "latent_avg": torch.randn(4), "args": argparse.Namespace(size=256),
           "g_optim": torch.optim.Adam(m.parameters()).state_dict()}
    path = tmp_path / "ckpt.pt"
    torch.save(obj, path, _use_new_zipfile_serialization=zipped)
    out = torch_pt.load(path, "test checkpoint", safe_globals=[argparse.Namespace])
    assert list(out["g_ema"]) == list(obj["g_ema"]) and out["args"].size == 256
    for k, v in obj["g_ema"].items():
        np.testing.assert_array_equal(torch_pt.to_numpy(out["g_ema"][k], k, path), v.numpy())


def test_allow_list_is_data_only():
    """The network allow-list holds no builtin that can allocate or call freely."""
    names = {f"{m}.{n}" for m, n in nvlabs.NETWORK_GLOBALS}
    for forbidden in ("builtins.bytearray", "builtins.list", "builtins.tuple", "builtins.dict", "builtins.slice",
                      "builtins.complex", "builtins.getattr", "builtins.eval", "copyreg._reconstructor"):
        assert forbidden not in names


# ----------------------------------------------------------------------------------------------
# Defect 3: error texts never suggest an unsafe step


@pytest.fixture(scope="module")
def evil_pt(tmp_path_factory):
    pytest.importorskip("torch")
    tmp = tmp_path_factory.mktemp("evil")
    marker = tmp / "EXECUTED"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp / "evil.pt"
    path.write_bytes(pickle.dumps({"state_dict": Evil()}, protocol=2))
    return path, marker


def _assert_safe_message(err, path):
    msg = str(err)
    assert str(path) in msg, msg
    assert not any(a in msg for a in UNSAFE_ADVICE), msg
    assert isinstance(err, StyleClipError)


def test_loaders_do_not_pass_on_unsafe_advice(evil_pt, tmp_path):
    from styleclip_jax.checkpoints.latents import load_latents
    from styleclip_jax.models.arcface import load_arcface
    from styleclip_jax.models.mapper import read_styleclip_mapper_pt

    path, marker = evil_pt
    for load in (load_arcface, read_styleclip_mapper_pt, lambda p: load_latents(p, 4, 8)):
        with pytest.raises(UnsafeCheckpointError) as info:
            load(path)
        _assert_safe_message(info.value, path)
        assert "posix.system" in str(info.value)
    assert not marker.exists()
    obj = tmp_path / "w.npy"
    np.save(obj, np.array([1, "x"], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError) as info:
        load_latents(obj, 4, 8)
    _assert_safe_message(info.value, obj)
    assert "Python objects" in str(info.value)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00\x01not a checkpoint" * 10)
    with pytest.raises(CheckpointFormatError) as info:
        read_styleclip_mapper_pt(junk)
    _assert_safe_message(info.value, junk)


def test_describe_error_of_torch_load(evil_pt):
    """The one-line text the CLIP-folder loader can give for transformers' errors (which quote torch's)."""
    torch = pytest.importorskip("torch")
    path, marker = evil_pt
    with pytest.raises(Exception) as info:
        torch.load(path, weights_only=True)
    assert "weights_only` set to `False`" in str(info.value)  # what torch says
    text = torch_pt.describe_error(info.value)
    assert text.startswith("it asks for the Python global posix.system, which a weights-only load does not allow")
    assert not any(a in text for a in UNSAFE_ADVICE) and not marker.exists()


def test_scrub_unsafe_advice():
    torch_msg = ("Weights only load failed. In PyTorch 2.6, we changed the default value of the `weights_only` "
                 "argument in `torch.load` from `False` to `True`. Re-running `torch.load` with `weights_only` set "
                 "to `False` will likely succeed, but it can result in arbitrary code execution. Do it only if you "
                 "got the file from a trusted source.\n\nTrying to load unsupported GLOBAL posix.system whose "
                 "module posix is blocked.\n\nCheck the documentation of torch.load to learn more.")
    out = torch_pt.scrub_unsafe_advice(torch_msg)
    assert out == "Trying to load unsupported GLOBAL posix.system whose module posix is blocked."
    assert torch_pt.scrub_unsafe_advice("Object arrays cannot be loaded when allow_pickle=False") == ""


# ----------------------------------------------------------------------------------------------
# Converter scripts: one line naming the file or flag, non-zero exit, no traceback


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, evil_pt):
    tmp = tmp_path_factory.mktemp("bad")
    empty = tmp / "empty.pt"
    empty.write_bytes(b"")
    rand = tmp / "random.pkl"
    rand.write_bytes(np.random.default_rng(0).bytes(3000))
    refused_pkl = tmp / "refused.pkl"
    refused_pkl.write_bytes(network_pickle({"G_ema": Call("posix", "system", "true")}))
    return {"refused": evil_pt[0], "refused_pkl": refused_pkl, "empty": empty, "random": rand}


@pytest.mark.parametrize("script,kind", [("convert_stylegan2.py", "refused_pkl"), ("convert_stylegan2.py", "random"),
                                         ("convert_mapper.py", "refused"), ("convert_mapper.py", "empty"),
                                         ("convert_arcface.py", "empty"), ("convert_arcface.py", "refused")])
def test_convert_scripts_bad_files(script, kind, bad_files, tmp_path):
    src = bad_files[kind]
    res = subprocess.run([sys.executable, str(REPO / "checkpoints_convert" / script), f"--src={src}",
                          f"--dst={tmp_path / 'out'}"], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, JAX_PLATFORMS="cpu"))
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "Traceback" not in out
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {src}:"), res.stderr
    assert not any(a in out for a in UNSAFE_ADVICE), out
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("script", ["convert_stylegan2.py", "convert_mapper.py", "convert_arcface.py"])
def test_convert_scripts_misspelled_flag(script, tmp_path):
    res = subprocess.run([sys.executable, str(REPO / "checkpoints_convert" / script), "--src=a.pt",
                          f"--dst={tmp_path / 'out'}", "--overwrit"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert "Traceback" not in res.stdout + res.stderr
    assert res.stderr.strip().splitlines() == [f"error: unrecognized arguments: --overwrit (see {script} --help)"]


def test_convert_script_debug_shows_traceback(bad_files, tmp_path, capsys):
    sys.path.insert(0, str(REPO / "checkpoints_convert"))
    try:
        import convert_stylegan2
    finally:
        sys.path.remove(str(REPO / "checkpoints_convert"))
    args = [f"--src={bad_files['random']}", f"--dst={tmp_path / 'out'}"]
    assert convert_stylegan2.main(args) == 1
    assert capsys.readouterr().err.startswith(f"error: {bad_files['random']}: ")
    with pytest.raises(CheckpointFormatError, match="not a pickle"):
        convert_stylegan2.main(args + ["--debug"])
