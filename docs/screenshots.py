"""Screenshots of the demo's site for the README: the home page, a post and the media page.

    make screenshots        (needs Chromium or Chrome: `apt-get install chromium`)

Runs ``egregora demo`` into a scratch folder, builds its site with ``mkdocs build --strict``,
serves it on a free port of this machine and has headless Chromium photograph three pages
into ``docs/screenshots/``. Nothing outside the scratch folder and those three files changes.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent / "screenshots"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
SIZE = "1280,960"
POST_DAY = "2024/05/14"  # the sample chat's day with photos


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass  # the pages served are not news


def browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    sys.exit(
        f"no Chromium or Chrome here ({', '.join(BROWSERS)}); install one, for example "
        "`apt-get install chromium`, then run `make screenshots` again"
    )


def run(*args: str, cwd: Path | None = None) -> None:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def main() -> None:
    chrome = browser()
    HERE.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="egregora-screenshots-") as scratch:
        folder = Path(scratch)
        run(sys.executable, "-m", "egregora", "demo", str(folder / "demo"))
        built = folder / "built"
        config = folder / "demo" / "site" / "mkdocs.yml"
        run(
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-q",
            "-f",
            str(config),
            "-d",
            str(built),
        )
        post = next((built / "blog" / POST_DAY).iterdir()).relative_to(built).as_posix()
        pages = {"home": "", "post": f"{post}/", "media": "media/"}
        handler = functools.partial(Quiet, directory=str(built))
        with ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
            threading.Thread(target=server.serve_forever, daemon=True).start()
            port = server.server_address[1]
            for name, path in pages.items():
                shot = HERE / f"{name}.png"
                run(
                    chrome,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--hide-scrollbars",
                    f"--window-size={SIZE}",
                    f"--screenshot={shot}",
                    f"http://127.0.0.1:{port}/{path}",
                )
                print(f"{shot.relative_to(HERE.parent.parent)}: http://…/{path}")
            server.shutdown()


if __name__ == "__main__":
    main()
