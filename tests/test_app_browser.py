"""The editor in a real browser: `main.py --mode=app` on 127.0.0.1 (random free port, shapes world), driven
in headless Chromium through Selenium (Debian's `chromium` + `chromium-driver`; `.ci/run` installs them).

Skipped, with the reason, only where the browser, its driver, selenium or the [app] extra are missing.
Set STYLECLIP_APP_SCREENSHOT=PATH to keep the screenshot (README's docs/app.png is made that way).
"""
import io
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytest.importorskip("gradio", reason="the [app] extra is not installed (pip install -e '.[app]')")
pytest.importorskip("selenium", reason="selenium is not installed (pip install selenium)")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip("no system chromium/chromedriver (apt-get install chromium chromium-driver)", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver import ActionChains  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from styleclip_jax.jobs import outputs as io_utils  # noqa: E402
from styleclip_jax.shapes import metrics  # noqa: E402
from styleclip_jax.shapes.render import COLOUR_RGB, render  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = _free_port()
    work = tmp_path_factory.mktemp("app")
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, str(REPO / "main.py"), "--mode=app", f"--workdir={work}",
                             f"--config.port={port}", "--config.alpha=0", "--config.seed=0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=str(REPO))
    log, url = [], None
    deadline = time.time() + 180
    for line in proc.stdout:
        log.append(line)
        if "serving at http://127.0.0.1:" in line:
            url = line.split("serving at ", 1)[1].split()[0]
            break
        if time.time() > deadline:
            break
    if url is None:
        proc.kill()
        pytest.fail("the app did not start:\n" + "".join(log))
    threading.Thread(target=lambda: [log.append(l) for l in proc.stdout], daemon=True).start()
    yield url, work, log
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def driver():
    o = Options()
    o.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        o.add_argument(a)
    d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=o)  # installed but not starting is a failure
    yield d
    d.quit()


def _q(d, css):
    return d.find_element("css selector", css)


def _wait(d, cond, what, timeout=90):
    return WebDriverWait(d, timeout, poll_frequency=0.2).until(lambda _: cond(), message=what)


def _img_src(d, elem):
    imgs = d.find_elements("css selector", f"#{elem} img")
    return imgs[0].get_attribute("src") if imgs else None


def _fetch_image(src) -> np.ndarray:
    """The PNG the page shows, back at the generator's 32 px, in [-1, 1]."""
    from PIL import Image
    with urllib.request.urlopen(src, timeout=30) as r:
        im = Image.open(io.BytesIO(r.read())).convert("RGB")
    u = np.asarray(im)
    f = u.shape[0] // 32
    return u[::f, ::f].astype(np.float32) / 127.5 - 1.0


def _shape_colour_distance(img, colour) -> float:
    """Distance of the mean shape-pixel colour (in [0, 1]) to a palette colour."""
    mask = metrics.shape_mask(img[None])[0]
    mean = ((img[mask] + 1) / 2).mean(0)
    return float(np.linalg.norm(mean - np.asarray(COLOUR_RGB[colour])))


def _upload(d, elem, path):
    tab = [e for e in d.find_elements("css selector", "button[role=tab]") if "Upload" in e.text][0]
    tab.click()
    clear = d.find_elements("css selector", f"#{elem} button[aria-label=Clear]")
    if clear:
        clear[0].click()
    _wait(d, lambda: d.find_elements("css selector", f"#{elem} input[type=file]"), "file input")
    _q(d, f"#{elem} input[type=file]").send_keys(str(path))


def test_edit_upload_and_errors_in_the_browser(server, driver, tmp_path):
    url, work, log = server
    d = driver
    d.get(url)
    _wait(d, lambda: "StyleCLIP" in d.title, "page title")
    _wait(d, lambda: "ready" in _q(d, "#status").text and _img_src(d, "preview"), "warm-up and first preview", 180)
    before = _fetch_image(_img_src(d, "preview"))
    kept0 = _q(d, "#kept").text

    # type a target (Enter applies it: the direction and the channel list are recomputed)
    box = _q(d, "#target textarea")
    box.clear()
    box.send_keys("a blue shape", Keys.ENTER)
    _wait(d, lambda: _q(d, "#kept").text not in ("", kept0), "channel list for the new target")
    assert "channels kept" in _q(d, "#kept").text
    # move alpha with the mouse: click the slider at 65 % of its track (alpha about +3)
    src0 = _img_src(d, "preview")
    rng = _q(d, "#alpha input[type=range]")
    ActionChains(d).move_to_element_with_offset(rng, int(rng.size["width"] * 0.15), 0).click().perform()
    _wait(d, lambda: _img_src(d, "preview") != src0, "preview after the alpha move")
    alpha = float(_q(d, "#alpha input[type=number]").get_attribute("value"))
    after = _fetch_image(_img_src(d, "preview"))
    assert alpha > 2, alpha
    assert np.abs(after - before).max() > 0.2
    # seed 0 is red; toward "a blue shape" its shape pixels turn blue (measured blue share 0 -> 0.97 at alpha 3.1)
    assert metrics.colour_share(after[None], "blue")[0] > metrics.colour_share(before[None], "blue")[0] + 0.15
    assert _shape_colour_distance(after, "blue") < _shape_colour_distance(before, "blue") - 0.2
    assert _q(d, "#message").text == ""
    d.save_screenshot(str(tmp_path / "app.png"))
    if os.environ.get("STYLECLIP_APP_SCREENSHOT"):
        shutil.copy(tmp_path / "app.png", os.environ["STYLECLIP_APP_SCREENSHOT"])

    # the current edit's PNG + latents, and the CLI's study files, written under the workdir
    _q(d, "#download").click()
    files_text = lambda: _q(d, "#files").text.replace("\n", "")  # noqa: E731
    _wait(d, lambda: "edit.png" in files_text() and "edit.npy" in files_text(), "download links")
    assert "saved" in _q(d, "#message").text
    _q(d, "#study").click()
    _wait(d, lambda: "study written to" in _q(d, "#study_out").text, "study export")
    studies = list(work.glob("study_*"))
    assert len(studies) == 1 and {"index.html", "metrics.json", "images.npz"} <= {p.name for p in studies[0].iterdir()}
    assert "a blue shape" in (studies[0] / "metrics.json").read_text()

    # a non-image upload: a message in the page, the server keeps serving
    (tmp_path / "notes.png").write_text("not a picture\n")
    _upload(d, "photo", tmp_path / "notes.png")
    _wait(d, lambda: "not an image" in _q(d, "#message").text, "error message for a non-image upload")

    # a rendered shape PNG: a reconstruction, or the clear message when this install has no encoder
    from PIL import Image
    Image.fromarray(io_utils.to_uint8(render(3)[0])).save(tmp_path / "shape.png")
    recon0 = _img_src(d, "reconstruction")
    _upload(d, "photo", tmp_path / "shape.png")
    from styleclip_jax.app import editor as E
    if E._encoder_from("shapes")[2] is None or E._refiner() is not None:  # an encoder, or refinement from mean W
        _wait(d, lambda: "inverted shape.png" in _q(d, "#message").text, "inversion of the uploaded render")
        _wait(d, lambda: _img_src(d, "reconstruction") != recon0, "the reconstruction")
        rec = _fetch_image(_img_src(d, "reconstruction"))
        err = float(np.mean((rec - render(3)[0]) ** 2))
        assert err < 0.05, err  # measured 0.014 (50 steps from the mean W); the render vs its mean colour: 0.18
    else:
        _wait(d, lambda: "encoder" in _q(d, "#message").text, "the no-encoder message")
        assert "not an image" not in _q(d, "#message").text
    assert _q(d, "#status").text.startswith("status: ready")

    assert "Traceback" not in "".join(log), "".join(log)
