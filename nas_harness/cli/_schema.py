"""``nas-harness schema study|ablation|scaling-curves``: a file format as JSON Schema (for editors) or a
Markdown key table.

Editors that read JSON Schema for TOML (taplo, VS Code's Even Better TOML) validate and complete a study file
whose first line is ``#:schema ./study.schema.json`` after ``nas-harness schema study > study.schema.json``.
"""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="JSON Schema (or --markdown key table) of study, ablation and scaling-curves files",
                       description=__doc__)
    p.add_argument("kind", choices=("study", "ablation", "scaling-curves"), help="which file format")
    p.add_argument("--markdown", action="store_true", help="the key table (key, type, default, allowed, meaning)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.kind == "study":
        from nas_harness.study.config import SECTIONS, schema_markdown, study_json_schema

        print(schema_markdown(SECTIONS) if args.markdown else json.dumps(study_json_schema(), indent=2))
    elif args.kind == "scaling-curves":
        from nas_harness.scaling_curves.config import scaling_curves_json_schema, scaling_curves_sections
        from nas_harness.study.config import schema_markdown

        print(schema_markdown(scaling_curves_sections()) if args.markdown
              else json.dumps(scaling_curves_json_schema(), indent=2))
    else:
        from nas_harness.ablation.config import ablation_json_schema, ablation_sections
        from nas_harness.study.config import schema_markdown

        print(schema_markdown(ablation_sections()) if args.markdown else json.dumps(ablation_json_schema(),
                                                                                    indent=2))
    return 0
