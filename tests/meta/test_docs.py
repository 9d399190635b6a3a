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
