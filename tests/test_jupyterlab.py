"""JupyterLab as users meet it: `make lab` (the README's command) driven by headless Chromium.

00_datasets is run top to bottom through the UI; every other notebook is opened (its stored outputs
and figures must render) and its parameters, import and widget cells are run in the live kernel.
Screenshots go to output/screenshots/. Needs Debian's chromium (`.ci/run` installs it); skipped
without it, except under CI where a missing browser is a failure.
"""

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

pytestmark = pytest.mark.slow  # drives JupyterLab in Chromium: left out of `make unit`
ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "output" / "screenshots"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
RUN_FULLY = "00_datasets.ipynb"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(autouse=True, scope="module")
def chromium():
    """The browser these tests drive; asked for when a test runs, not when the module is collected (so
    `make unit`, which deselects them, never needs it)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} missing: .ci/run installs Debian's chromium package", pytrace=False)
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")


class Lab:
    """A JupyterLab server on 127.0.0.1 over a temporary copy of notebooks/."""

    def __init__(self, tmp: Path, port: int):
        self.root = tmp / "work"
        shutil.copytree(ROOT / "notebooks", self.root, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        self.port, self.token = port, "lessonlib-test-token"
        settings = tmp / "settings" / "@jupyterlab" / "notebook-extension"
        settings.mkdir(parents=True)
        # Render every cell (no virtual windowing), so stored outputs are all in the DOM.
        (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
        news = tmp / "settings" / "@jupyterlab" / "apputils-extension"
        news.mkdir(parents=True)
        (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
        env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp / "config"),
                   JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
                   JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"), LESSONLIB_PROGRESS="1")
        self.log = open(tmp / "lab.log", "w")  # noqa: SIM115 - closed in stop()
        # `make lab`, the README's command, on the copy, with the test's own port and token
        options = ["--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
                   f"--IdentityProvider.token={self.token}", "--ServerApp.port_retries=0", "--allow-root"]
        self.proc = subprocess.Popen(
            ["make", "-s", "-C", str(ROOT), "lab", f"LAB_ROOT={self.root}", f"LAB_OPTS={' '.join(options)}"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 60
        while True:
            try:
                self.api("status")
                return
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    self.stop()
                    raise RuntimeError(f"JupyterLab did not start; see {tmp / 'lab.log'}") from None
                time.sleep(0.5)

    def api(self, path: str):
        headers = {"Authorization": f"token {self.token}"}
        req = urllib.request.Request(f"{self.url}/api/{path}", headers=headers)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def stop(self):
        for kernel in self.api_or_empty("kernels"):
            req = urllib.request.Request(f"{self.url}/api/kernels/{kernel['id']}", method="DELETE",
                                         headers={"Authorization": f"token {self.token}"})
            try:
                urllib.request.urlopen(req, timeout=10)
            except OSError:
                pass
        self.signal(signal.SIGTERM)  # make and the JupyterLab it started
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
        self.log.close()

    def signal(self, sig):
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:  # already gone (it failed to start)
            pass

    def api_or_empty(self, path):
        try:
            return self.api(path)
        except OSError:
            return []


@pytest.fixture(scope="module")
def lab(tmp_path_factory, free_port):
    server = Lab(tmp_path_factory.mktemp("lab"), free_port())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        yield context.new_page()
    finally:
        context.close()


def open_notebook(page, lab: Lab, name: str):
    # ?reset: a fresh workspace, so tabs from the previous test are not restored beside this one
    page.goto(f"{lab.url}/lab/tree/{name}?reset&token={lab.token}")
    page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell", timeout=60_000)
    wait_idle(page, lab, timeout=120)


def wait_idle(page, lab: Lab, timeout: float):
    """Wait until the notebook's kernel exists and is idle, with no cell still queued ([*])."""
    deadline, quiet = time.time() + timeout, 0
    while time.time() < deadline:
        kernels = lab.api("kernels")
        busy = any(k["execution_state"] != "idle" for k in kernels) or not kernels
        queued = page.locator(".jp-InputPrompt", has_text="[*]").count()
        quiet = quiet + 1 if not busy and not queued else 0
        if quiet >= 3:
            return
        time.sleep(0.5)
    raise AssertionError(f"kernel still busy after {timeout}s: {lab.api('kernels')}")


def run_command(page, label: str):
    """Run a JupyterLab command by its label through the command palette."""
    page.keyboard.press("Control+Shift+C")
    page.wait_for_selector(".lm-CommandPalette-input", state="visible")
    page.fill(".lm-CommandPalette-input", label)
    page.locator(".lm-CommandPalette-item", has_text=label).first.click()


def rendered_images(page) -> int:
    return page.evaluate(
        "() => [...document.querySelectorAll("
        "'.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output img')]"
        ".filter(img => img.complete && img.naturalWidth > 0).length")


def stored_images(nb) -> int:
    return sum("image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", []))


def cells_to_run(nb) -> list[int]:
    """Indices of the parameters cell, the import cell after it, and every cell tagged `widget`."""
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    chosen = set(code[:2])
    chosen |= {i for i in code if "widget" in nb.cells[i].metadata.get("tags", [])}
    return sorted(chosen)


def cell_at(page, index: int):
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(index)


def run_cell(page, lab: Lab, index: int):
    """Select cell `index`, run it with Ctrl+Enter and wait until it has an execution count."""
    prompt = cell_at(page, index).locator(".jp-InputPrompt")
    for _ in range(3):
        prompt.click()
        page.keyboard.press("Control+Enter")
        time.sleep(1)
        wait_idle(page, lab, timeout=180)
        if prompt.inner_text().strip() not in ("[ ]:", "[*]:", ""):
            return
    raise AssertionError(f"cell {index} did not run: prompt {prompt.inner_text()!r}")


def output_image_src(widget) -> str:
    img = widget.locator("img").first
    img.wait_for(timeout=60_000)
    return img.get_attribute("src")


def wait_image_changed(page, box, before: str):
    page.wait_for_function(
        "([el, src]) => { const i = el.querySelector('img'); return i && i.src !== src; }",
        arg=[box.element_handle(), before], timeout=60_000)


def exercise_widgets(page, lab: Lab):
    """Use each live widget as a person would: move the slider, pick a variable, type and run."""
    used = 0
    for box in page.locator(".lessonlib-dropout-explorer").all():
        before = output_image_src(box)
        handle = box.locator(".noUi-handle").first
        handle.scroll_into_view_if_needed()
        x, y = (lambda b: (b["x"] + b["width"] / 2, b["y"] + b["height"] / 2))(handle.bounding_box())
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + 60, y, steps=5)
        page.mouse.up()
        wait_idle(page, lab, timeout=60)
        wait_image_changed(page, box, before)
        used += 1
    for box in page.locator(".lessonlib-embedding-explorer").all():
        before = output_image_src(box)
        select = box.locator("select")
        options = select.locator("option").all_inner_texts()
        select.select_option(options[-1])
        wait_idle(page, lab, timeout=60)
        wait_image_changed(page, box, before)
        used += 1
    for box in page.locator(".lessonlib-text-box").all():
        box.locator("textarea").fill("This movie was")
        box.locator("button").click()
        wait_idle(page, lab, timeout=120)
        out = box.locator(".widget-output").inner_text()
        assert out.strip(), "the text box showed no answer"
        used += 1
    return used


def read_after_save(path: Path, before_ns: int, timeout: float):
    """Read the notebook once JupyterLab has finished saving it.

    jupyter_server saves by copying the old file to `.~<name>`, then truncating and rewriting the
    file in place, then deleting the copy; the mtime changes at the truncation, so a read then can
    meet an empty or half-written file. Wait for the mtime to change and the copy to be gone, and
    retry a read that does not parse.
    """
    backup = path.with_name(".~" + path.name)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.stat().st_mtime_ns != before_ns and not backup.exists():
            try:
                return nbformat.read(path, as_version=4)
            except nbformat.reader.NotJSONError:
                pass
        time.sleep(0.2)
    raise AssertionError(f"JupyterLab did not finish saving {path.name} within {timeout}s")


def saved_errors(page, lab: Lab, name: str) -> list[str]:
    """Save the notebook from the UI and list the error outputs in what JupyterLab wrote."""
    path = lab.root / name
    before = path.stat().st_mtime_ns
    page.keyboard.press("Control+s")
    nb = read_after_save(path, before, timeout=30)
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    return [f"{o.ename}: {o.evalue}" for o in outputs if o.output_type == "error"]


@pytest.mark.skipif(not (ROOT / "notebooks" / RUN_FULLY).exists(), reason=f"{RUN_FULLY} not written yet")
def test_first_notebook_runs_top_to_bottom_in_jupyterlab(lab, page):
    open_notebook(page, lab, RUN_FULLY)
    run_command(page, "Restart Kernel and Run All Cells")
    page.locator(".jp-Dialog-button.jp-mod-accept").click()
    time.sleep(2)
    wait_idle(page, lab, timeout=600)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "00_datasets.png"), full_page=True)
    assert saved_errors(page, lab, RUN_FULLY) == []
    prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
    assert prompts and all(p.strip() not in ("[ ]:", "[*]:") for p in prompts), prompts
    assert rendered_images(page) >= max(1, stored_images(nbformat.read(lab.root / RUN_FULLY, 4)))
    assert all(k["execution_state"] == "idle" for k in lab.api("kernels"))


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.name != RUN_FULLY], ids=lambda p: p.stem)
def test_notebook_opens_with_outputs_and_live_widgets(lab, page, path):
    nb = nbformat.read(path, as_version=4)
    open_notebook(page, lab, path.name)
    assert rendered_images(page) >= stored_images(nb) > 0, "stored figures did not render"
    for index in cells_to_run(nb):
        run_cell(page, lab, index)
    widget_cells = sum("widget" in c.metadata.get("tags", []) for c in nb.cells)
    assert exercise_widgets(page, lab) >= widget_cells
    assert saved_errors(page, lab, path.name) == []
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{path.stem}.png"), full_page=True)
