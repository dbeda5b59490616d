"""The offline check of a report (pure HTML parsing, no kernel): what a browser
would load from outside the file."""

from __future__ import annotations

from labkit.commands.report.offline import external_references


def test_external_references_finds_what_a_browser_would_load():
    html = """<html><head>
    <script src="https://cdn.example/require.js"></script>
    <link rel="stylesheet" href="//fonts.example/css">
    <link rel="icon" href="favicon.ico">
    <style>/* https://github.com/in/a/comment is fine */
      .a { background: url("https://img.example/bg.png") }
      .b { background: url(data:image/png;base64,AAAA) }
      @import "http://css.example/x.css";
    </style></head><body>
    <a href="https://docs.example/">a link is not a load</a>
    <a href="#frag">x</a>
    <img src="data:image/png;base64,iVBORw0KGgo=">
    <img src="http://img.example/x.png" srcset="data:image/png;base64,AA 1x, https://i.example/2x.png 2x">
    <div style="background-image:url('http://style.example/y.png')"></div>
    <iframe src="https://frame.example/"></iframe>
    <svg xmlns="http://www.w3.org/2000/svg"><image href="https://svg.example/i.png"/><use href="#local"/></svg>
    <script>var x = 1;</script>
    <script>fetch("https://api.example/data")</script>
    </body></html>"""
    refs = external_references(html)
    joined = "\n".join(refs)
    for needle in ("cdn.example", "fonts.example", "favicon.ico", "img.example/bg.png", "css.example",
                   "img.example/x.png", "i.example/2x.png", "style.example", "frame.example",
                   "svg.example", "api.example"):
        assert needle in joined, (needle, refs)
    for fine in ("docs.example", "github.com", "w3.org", "#frag", "#local", "data:"):
        assert fine not in joined, (fine, refs)
    assert len(refs) == 11, refs
    assert external_references("<p>plain <b>text</b></p><a href='http://x.example'>l</a>") == []
