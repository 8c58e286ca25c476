"""A report as its reader sees it: HTML parsed into text, images and links, with tags checked
to nest, and Markdown rendered to HTML first."""

from __future__ import annotations

from html.parser import HTMLParser


class _Checker(HTMLParser):
    """Collects what a reader's browser would see and checks tags nest properly."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.images: list[str] = []
        self.urls: list[str] = []
        self.text: list[str] = []
        self.scripts: dict[str, str] = {}
        self._script: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src") or "")
        for name in ("src", "href"):
            if a.get(name):
                self.urls.append(a[name] or "")
        if tag == "script":
            self._script = a.get("id") or ""
            self.scripts[self._script] = ""
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()
        if tag == "script":
            self._script = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self.scripts[self._script] += data
        else:
            self.text.append(data)


def parse_html(text: str) -> _Checker:
    checker = _Checker()
    checker.feed(text)
    checker.close()
    assert not checker.errors, checker.errors
    assert checker.stack == [], checker.stack
    return checker


def render_markdown(text: str) -> _Checker:
    """The Markdown as a CommonMark renderer with GFM tables shows it (markdown-it-py)."""
    from markdown_it import MarkdownIt

    return parse_html(MarkdownIt("commonmark").enable("table").render(text))
