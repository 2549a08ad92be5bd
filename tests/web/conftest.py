"""Browser tests: Playwright driving Debian's Chromium against a real server process on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import REPO_ROOT
from tests.server.process import ServerProcess, free_port, server_command

CHROMIUM = Path("/usr/bin/chromium")
LIBRARY = REPO_ROOT / "node_modules" / "@comfyorg" / "litegraph" / "dist" / "litegraph.es.js"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (./test.sh installs it)")


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    """Chromium for one module: Playwright's sync API holds an event loop, which async tests elsewhere must not see."""
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y --no-install-recommends chromium")
    if not LIBRARY.is_file():
        pytest.skip(f"{LIBRARY} is missing: run scripts/bootstrap.sh dev (npm ci)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server per test module (with the slow and failing test nodes), every folder under a temporary directory."""
    root = tmp_path_factory.mktemp("editor")
    port = free_port()
    process = ServerProcess(server_command(root, port, module="tests.server.slow_nodes"), port, root / "server.log")
    yield process.start()
    process.stop()


BUILD_CHAIN = """(chain) => {
  const { LiteGraph, graph, loadWorkflow } = reelgraph;
  loadWorkflow({ nodes: [], links: [], version: 0.4 });
  let previous = null;
  return chain.map(([type, values], index) => {
    const node = LiteGraph.createNode(type);
    node.pos = [index * 350, 100];
    graph.add(node);
    for (const [name, value] of Object.entries(values)) node.widgets.find((w) => w.name === name).value = value;
    previous?.connect(0, node, 0);
    previous = node;
    return node.id;
  });
}"""


class EditorPage:
    """A page of the editor, with the console errors it logged."""

    def __init__(self, page: sync_api.Page, url: str) -> None:
        self.page = page
        self.url = url
        self.errors: list[str] = []
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def open(self) -> EditorPage:
        self.page.goto(self.url)
        self.page.wait_for_function("window.reelgraph !== undefined", timeout=10_000)
        return self

    def evaluate(self, script: str, arg: object = None) -> object:
        return self.page.evaluate(script, arg)

    def build_chain(self, *chain: tuple[str, dict[str, object]]) -> list[int]:
        """Replace the graph by a chain of nodes (type, widget values), each output 0 linked to the next input 0."""
        return self.page.evaluate(BUILD_CHAIN, [list(link) for link in chain])


@pytest.fixture
def editor(browser: sync_api.Browser, server: ServerProcess) -> Iterator[EditorPage]:
    """The editor in a fresh browser context (its own localStorage), opened and ready."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = EditorPage(context.new_page(), f"http://{server.address}/")
    yield page.open()
    context.close()
