"""Everything declared is documented; the error catalog is well formed; the README example runs."""
import os
import pathlib
import re
import subprocess
import sys

from ocean import errors, settings

ROOT = pathlib.Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_settings_table_matches_the_declaration():
    block = README.split("<!-- settings:begin -->")[1].split("<!-- settings:end -->")[0].strip()
    assert block == settings.markdown_table(), "regenerate with: python -c 'from ocean.settings import markdown_table as m; print(m())'"


def test_error_catalog_codes_unique_and_documented():
    classes = errors.catalog()
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes)), sorted(c for c in codes if codes.count(c) > 1)
    for cls in classes:
        assert cls.__doc__ and cls.__doc__.strip(), cls
        assert 400 <= cls.status < 600
        assert re.fullmatch(r"[a-z_]+", cls.code)


def test_readme_starts_with_what_ocean_is_then_two_commands():
    head = README.split("## ")[0]
    blocks = re.findall(r"```sh\n(.*?)\n```", head, re.S)
    assert len(blocks) == 2 and all("\n" not in b for b in blocks)
    assert "ocean serve" in blocks[0] and "pytest" in blocks[1]


def test_readme_library_example_runs(tmp_path):
    code = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "{'page_views': 1}"


DOCS = ROOT / "docs"


def _doc(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def test_http_doc_lists_every_error_code_from_the_catalog():
    text = _doc("http.md")
    block = text.split("<!-- errors:begin -->\n")[1].split("\n<!-- errors:end -->")[0]
    assert block == errors.markdown_table(), (
        "regenerate with: python -c 'from ocean.errors import markdown_table as m; print(m())'")
    for cls in errors.catalog():
        assert f"| `{cls.code}` | {cls.status} |" in block, cls.code  # `closed` (the draining 503) included


def test_http_doc_says_which_answers_carry_errors_with_status_200():
    text = _doc("http.md")
    assert "Every error, on every endpoint, is JSON with a 4xx/5xx status" not in text
    errors_section = text.split("## Errors")[1].split("\n## ")[0]
    assert "`POST /exec` answers `200`" in errors_section and "batch `POST /drop`" in errors_section


def test_docs_stand_on_their_own_without_the_tutorial():
    """A user of ocean does not have the tutorial these pages were written from: no page may cite it."""
    for path in [*DOCS.glob("*.md"), ROOT / "examples" / "dashboard.html"]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"tutorial", text, re.I), path.name


def _code_lines(text: str) -> list[str]:
    """The lines inside fenced code blocks, continuation lines (``\\``) joined."""
    out, fence = [], False
    for line in text.replace("\\\n", " ").splitlines():
        if line.startswith("```"):
            fence = not fence
        elif fence:
            out.append(line)
    return out


def test_curl_commands_that_send_a_body_say_its_type():
    """`curl -d` sends form-urlencoded and strips a file's newlines: every documented body names its type."""
    for path in DOCS.glob("*.md"):
        text = path.read_text(encoding="utf-8")
        assert "also what `curl -d` sends" not in text, path.name
        for line in _code_lines(text):
            if re.search(r"\bcurl\b.*(\s-d\s|--data)", line) and "--data-urlencode" not in line:
                assert "Content-Type" in line, (path.name, line)
                assert not re.search(r"\s-d\s+@", line), (path.name, line)


def test_the_401_hint_in_the_docs_and_the_server_name_the_same_ways():
    from ocean.web.auth import MISSING_KEY

    for way in ("X-Ocean-Key", "Authorization: Bearer", "?_key="):
        assert way in MISSING_KEY and way in _doc("http.md"), way
