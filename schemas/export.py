"""Write the regimen file's JSON Schema: `python -m schemas.export docs/regimen.schema.json`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from schemas.regimen import Regimen


def regimen_schema_text() -> str:
    schema = Regimen.model_json_schema(by_alias=True)
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    target = Path(argv[1] if len(argv) > 1 else "docs/regimen.schema.json")
    target.write_text(regimen_schema_text(), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
