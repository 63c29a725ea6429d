"""The Jinja2 templates and static files of the web app (no build step: plain HTML/CSS/JS).

``templates/base.html`` holds the page frame and the nav (Review / Generate / LoRAs);
pages extend it and fill ``{% block content %}``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.templating import Jinja2Templates

HERE = Path(__file__).parent
TEMPLATE_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
templates = Jinja2Templates(directory=str(TEMPLATE_DIR))
