"""Results files shared by experiments: each rewrites only its own section."""

from __future__ import annotations

from avkit.reporting import read_section, update_section


def test_sections_are_replaced_in_place_and_others_kept(tmp_path):
    path = tmp_path / "results.md"
    update_section(path, "joint", "## Joint\n\n| a | 1 |")
    update_section(path, "few", "## Few\n\nnot yet")
    update_section(path, "joint", "## Joint\n\n| a | 2 |")  # a rerun replaces its own numbers only
    text = path.read_text()
    assert text.startswith("# Results\n") and text.count("## Joint") == 1 and "| a | 2 |" in text and "| a | 1 |" not in text
    assert text.index("## Joint") < text.index("## Few")  # in place, not moved to the end
    assert read_section(path, "few") == "## Few\n\nnot yet" and read_section(path, "none") is None
    assert read_section(tmp_path / "absent.md", "few") is None
