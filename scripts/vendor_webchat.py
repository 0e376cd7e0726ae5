"""Copies rasa-webchat's browser bundle from an npm install into the website's vendor
folder, patched, and records the hashes of the styles it injects (the page's CSP allows
exactly those). Run by scripts/vendor-webchat.sh; usage: vendor_webchat.py PACKAGE_DIR VENDOR_DIR.

The patches, each checked to apply exactly as often as expected (a new version of the
bundle that no longer matches stops the refresh instead of shipping unpatched):
- the 11 `@import` of the Inter font from Google Fonts go: a request to another host,
  blocked in mainland China, and a visitor leak; the page names its own font stack;
- each `user_uttered` message carries the widget's `customData` also as `metadata`, the
  key Rasa's socket.io channel reads message metadata from (credentials.yml keeps
  Rasa's default `metadata_key`);
- socket.io connects over WebSocket at once, without HTTP long-polling first: polling
  from the website's origin would need CORS opened on the Rasa server (and its whole
  HTTP API with it), and several Rasa servers behind a load balancer would need sticky
  sessions for it. The widget offers no option for this.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

GOOGLE_FONTS_IMPORT = "@import url(https://fonts.googleapis.com/css?family=Inter:400,500,700&display=swap);"
CUSTOM_DATA = re.compile(r"customData:([\w.$]+),session_id:")
SOCKET_OPTIONS = "socketio:function(e,t,n){var r=n?{path:n}:{}"
WEBSOCKET_ONLY = 'socketio:function(e,t,n){var r=n?{path:n,transports:["websocket"]}:{transports:["websocket"]}'
STYLES_FILE = "rasa-webchat.styles.json"
CHROMIUM = "/usr/bin/chromium"


def patch(bundle: str) -> str:
    imports = bundle.count(GOOGLE_FONTS_IMPORT)
    if imports != 11:
        sys.exit(f"expected 11 Google Fonts imports in the bundle, found {imports}: review the patch")
    bundle = bundle.replace(GOOGLE_FONTS_IMPORT, "")
    bundle, emits = CUSTOM_DATA.subn(r"customData:\1,metadata:\1,session_id:", bundle)
    if emits != 3:
        sys.exit(f"expected 3 user_uttered emits with customData, found {emits}: review the patch")
    if bundle.count(SOCKET_OPTIONS) != 1:
        sys.exit("expected the socket.io options of the widget once: review the patch")
    bundle = bundle.replace(SOCKET_OPTIONS, WEBSOCKET_ONLY)
    if "googleapis" in bundle:
        sys.exit("the bundle still names googleapis: review the patch")
    return bundle


def injected_styles(bundle: str) -> list[str]:
    """The texts of the <style> elements the widget adds, open, in a real Chromium."""
    page_html = '<!doctype html><meta charset="utf-8"><body><div id="chat"></div>'
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-background-networking"]
        )
        page = browser.new_page()
        # a page of its own origin (the widget needs sessionStorage); nothing else loads
        page.route(
            "**/*",
            lambda route: route.fulfill(body=page_html, content_type="text/html")
            if route.request.url == "http://vendor.invalid/"
            else route.abort(),
        )
        page.goto("http://vendor.invalid/")
        page.add_script_tag(content=bundle)
        page.evaluate(
            """() => WebChat.default({socketUrl: 'http://127.0.0.1:9', withRules: false,
                hideWhenNotConnected: false, params: {storage: 'session'}}, document.getElementById('chat'))"""
        )
        page.click(".rw-launcher")
        page.wait_for_selector(".rw-conversation-container")
        styles = page.evaluate("() => [...document.querySelectorAll('style')].map(s => s.textContent)")
        browser.close()
    return styles


def csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def main(package_dir: str, vendor_dir: str) -> int:
    package, vendor = Path(package_dir), Path(vendor_dir)
    version = json.loads((package / "package.json").read_text())["version"]
    bundle = patch((package / "lib" / "index.js").read_text(encoding="utf-8"))
    header = (
        f"/* rasa-webchat {version} (npm, lib/index.js), Apache-2.0 (rasa-webchat.LICENSE); patched by "
        "scripts/vendor_webchat.py: no Google Fonts import, customData also sent as metadata, "
        "socket.io over WebSocket only */\n"
    )
    bundle = header + bundle
    (vendor / "rasa-webchat.js").write_text(bundle, encoding="utf-8")
    (vendor / "rasa-webchat.LICENSE").write_text((package / "LICENSE").read_text(encoding="utf-8"))
    hashes = sorted({csp_hash(text) for text in injected_styles(bundle)})
    record = {
        "version": version,
        "bundle_sha256": hashlib.sha256(bundle.encode()).hexdigest(),
        "style_hashes": hashes,
    }
    (vendor / STYLES_FILE).write_text(json.dumps(record, indent=2) + "\n")
    print(f"rasa-webchat {version} copied to {vendor} ({len(hashes)} style hashes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
