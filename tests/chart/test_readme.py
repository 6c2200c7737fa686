"""values.yaml documents every value, and the chart README's values table is generated from it."""
import yaml

from .values_table import CHART_DIR, described_paths, leaf_rows, render_readme


def test_every_value_is_commented():
    text = (CHART_DIR / "values.yaml").read_text()
    rows = leaf_rows(yaml.safe_load(text), described_paths(text))
    assert len(rows) > 100
    assert not [path for path, _, description in rows if not description]


def test_readme_values_table_is_current():
    readme = (CHART_DIR / "README.md").read_text()
    assert readme == render_readme(readme), "run: .venv/bin/python -m tests.chart.values_table --write"
