#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Rewrites the "## Parameters" section of a chart's README.md (helm/megaphone, or the chart folder given) from values.yaml's `## @section` and
`## @param` lines (the bitnami readme-generator convention), keeping everything before it.

    python3 scripts/helm-readme.py [helm/megaphone-ejabberd]

ChartValuesDocumentationTest checks that the table and values.yaml agree.
"""
import json
import pathlib
import re

import yaml  # python3-yaml

import sys

CHART = (pathlib.Path(sys.argv[1]).resolve() if len(sys.argv) > 1
         else pathlib.Path(__file__).resolve().parent.parent / "helm" / "megaphone")
PARAM = re.compile(r"^\s*## @param (\S+)(?: \[(\w+)])? (.+)$")
SECTION = re.compile(r"^## @section (.+)$")


def value_of(values, path):
    node = values
    for key in path.split("."):
        node = node[key]
    return node


def show(value):
    if isinstance(value, str):
        return f'`"{value}"`' if value == "" else f"`{value}`"
    text = json.dumps(value, separators=(",", ":"))
    return f"`{text}`" if len(text) <= 60 else "see values.yaml"


def main():
    values_file = CHART / "values.yaml"
    values = yaml.safe_load(values_file.read_text())
    lines = ["## Parameters", "",
             "This table follows `values.yaml`, where each value has a `## @param` comment (a test keeps them in step;",
             "`python3 scripts/helm-readme.py` rewrites it).", ""]
    open_table = False
    for line in values_file.read_text().splitlines():
        if m := SECTION.match(line):
            lines += ["", f"### {m.group(1)}", "", "| Name | Description | Value |", "|---|---|---|"]
            open_table = True
        elif (m := PARAM.match(line)) and open_table:
            path, description = m.group(1), m.group(3).replace("|", "\\|")
            lines.append(f"| `{path}` | {description} | {show(value_of(values, path))} |")
    readme = CHART / "README.md"
    head = readme.read_text().split("\n## Parameters\n")[0]
    readme.write_text(head + "\n" + "\n".join(lines).replace("\n\n\n", "\n\n") + "\n")


if __name__ == "__main__":
    main()
