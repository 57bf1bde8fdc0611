"""The shared-index benchmark (``python -m benchmarks.shared_index``) at a tiny size, so that it cannot rot."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from benchmarks.shared_index import main


def test_tiny_shared_index(data_dir: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    shutil.copytree(data_dir, data)  # the cached data set is shared: leave it as it is
    out = tmp_path / "result.json"
    assert main([str(data), "--queries", "60", "--restarts", "1", "--workers", "1,2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["trips"] > 0 and result["segment_bytes_per_trip"] > 0
    assert [r["cold"] for r in result["restarts"]] == [False, True]
    assert all(0 < r["first_answer_s"] < 60 for r in result["restarts"])
    assert [m["workers"] for m in result["memory"]] == [1, 2]
    for m in result["memory"]:
        assert len(m["per_worker"]) == m["workers"]
        assert all(0 < w["with_index"]["Pss"] <= w["with_index"]["Rss"] for w in m["per_worker"])
    assert "total: RSS" in capsys.readouterr().out
