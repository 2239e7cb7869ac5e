"""The plugin loads with every registry: loading it imports nothing heavy, and an interface
without a cache never touches it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CODE = """
import json, sys
import llmplug
before = [m for m in ("sqlite3", "llmplug_cache") if m in sys.modules]
registry = llmplug.default_registry()
pool = llmplug.APIKeyPool(["sk-x"], "p")
plain = llmplug.OpenAICompatible(pool, "m", "http://127.0.0.1:9/v1")
loaded = [m for m in ("sqlite3", "llmplug_cache._cache", "llmplug_cache._sqlite")
          if m in sys.modules]
cached = llmplug.OpenAICompatible(pool, "m", "http://127.0.0.1:9/v1", cache={"path": sys.argv[1]})
print(json.dumps({"before": before, "loaded": loaded, "plugin": "cache" in
      [p.name for p in registry.plugins()], "wrapped": plain.call_wrapper is None and
      cached.call_wrapper is not None, "sqlite3": "sqlite3" in sys.modules}))
"""


def test_loading_the_plugin_imports_nothing_heavy_and_makes_no_file(tmp_path: Path) -> None:
    db = tmp_path / "never" / "made.db"
    done = subprocess.run(
        [sys.executable, "-c", CODE, str(db)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out == {
        "before": [],
        "loaded": [],
        "plugin": True,
        "wrapped": True,
        "sqlite3": True,  # made for the interface that asked for a cache
    }
    assert not db.parent.exists()  # no file until a call needs one
