"""The README's console pictures: the console in Chromium against `openlookout serve`, on an MVTec
AD category folder (train/good, test/<kind>).

    .venv/bin/python -m tests.e2e.readme_screenshots --data DIR [--out docs/console]

Each picture is a viewport shot reduced to a 256-colour PNG (fewer if needed), under 200 KB.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image
from playwright.sync_api import sync_playwright

from tests.contract.conftest import ROOT, LocalServer, free_port
from tests.e2e.test_console import upload, wait_js

MAX_BYTES = 200_000


def save(page: Any, out: Path, name: str) -> None:
    raw = out / f"{name}.raw.png"
    page.screenshot(path=str(raw))
    target = out / f"{name}.png"
    for colours in (256, 128, 64):  # photos need fewer colours than bytes allow
        image = Image.open(raw).convert("RGB").quantize(colours, method=Image.Quantize.MEDIANCUT)
        image.save(target, optimize=True)
        if target.stat().st_size < MAX_BYTES:
            break
    raw.unlink()
    size = target.stat().st_size
    print(f"{target}: {size // 1024} KB")
    assert size < MAX_BYTES, f"{target} is {size} bytes"


def run(data: Path, out: Path, train: int, test_good: int, per_defect: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="openlookout-shots-"))
    server = LocalServer(tmp / "data", free_port())
    server.command = lambda: [  # type: ignore[method-assign]
        str(ROOT / ".venv/bin/python"), "-m", "openlookout.cli", "serve", "--port", str(server.port),
        "--data-dir", str(server.data_dir), "--template", str(ROOT / "template.yaml"),
    ]  # fmt: skip
    server.start()
    project = data.name
    page: Any = None
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=shutil.which("chromium"), args=["--no-sandbox"]
            )
            page = browser.new_page(viewport={"width": 1200, "height": 760})
            page.set_default_timeout(60_000)
            base = f"{server.endpoint_url}/console/#/projects/{project}"
            page.goto(f"{server.endpoint_url}/console/")
            page.fill("input[name=project-name]", project)
            page.click("text=Create project")
            page.click("#create-train")
            upload(page, sorted((data / "train" / "good").glob("*"))[:train], "normal")
            page.click("#tab-test")
            page.click("#create-test")
            upload(page, sorted((data / "test" / "good").glob("*"))[:test_good], "normal")
            kinds = [d for d in sorted((data / "test").iterdir()) if d.name != "good"]
            defects = [p for d in kinds for p in sorted(d.glob("*"))[:per_defect]]
            upload(page, defects[:-1], "")
            page.select_option("#filter", "unlabeled")
            unlabeled = "document.querySelectorAll('#grid figure[data-label=unlabeled]').length"
            wait_js(page, f"{unlabeled} === {len(defects) - 1}")
            page.click("#select-page")
            page.click("#label-anomaly")
            page.wait_for_selector("#grid:has-text('No image here')")
            page.select_option("#filter", "all")
            page.wait_for_selector("#grid figure[data-label=anomaly]")
            page.wait_for_timeout(1500)
            save(page, out, "dataset")

            page.locator("#grid figure[data-label=anomaly]").first.click()
            page.click("#paint-mask")
            wait_js(page, "document.querySelector('#mask-canvas').width > 100")
            box = page.locator("#mask-canvas").bounding_box()
            for offset in (0.0, 0.015, 0.03):  # three brush strokes over the broken glass
                page.mouse.move(box["x"] + box["width"] * (0.2 + offset), box["y"] + box["height"] * 0.62)
                page.mouse.down()
                page.mouse.move(
                    box["x"] + box["width"] * (0.28 + offset), box["y"] + box["height"] * 0.69, steps=10
                )
                page.mouse.up()
            save(page, out, "mask-editor")
            page.click("#save-mask")
            page.wait_for_selector("#mask-editor", state="detached")
            page.wait_for_selector("#grid figure .type")  # CreateModel wants settled datasets

            page.click("#tab-models")
            page.click("#train")
            page.wait_for_selector("#models .status[data-status=TRAINED]", timeout=600_000)
            page.click("text=version 1")
            page.click("#start-model")
            page.wait_for_selector("#model-status .status[data-status=HOSTED]")
            page.set_input_files("#trial-files", [str(defects[-1])])
            page.wait_for_selector("#verdict")
            page.wait_for_timeout(500)
            page.locator("#trial").evaluate("e => e.closest('.card').scrollIntoView()")
            save(page, out, "trial")
            page.locator("#evaluation-metrics").evaluate("e => e.closest('.card').scrollIntoView()")
            wait_js(page, "[...document.images].every(i => i.complete)")
            save(page, out, "evaluation")
            page.click("#stop-model")
            page.wait_for_selector("#model-status .status[data-status=TRAINED]")
            page.goto(f"{base}/models")
            page.wait_for_selector("#models")
            save(page, out, "models")
            page.goto(f"{server.endpoint_url}/console/#/")
            page.wait_for_selector("#projects")
            save(page, out, "projects")
            browser.close()
    except Exception:
        if page is not None:
            page.screenshot(path=str(out / "failure.raw.png"))
            banner = page.locator("#error")
            print("error banner:", banner.inner_text() if banner.count() else None)
        raise
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console")
    parser.add_argument("--train", type=int, default=60)
    parser.add_argument("--test-good", type=int, default=10)
    parser.add_argument("--per-defect", type=int, default=5)
    args = parser.parse_args()
    run(args.data.resolve(), args.out, args.train, args.test_good, args.per_defect)


if __name__ == "__main__":
    main()
