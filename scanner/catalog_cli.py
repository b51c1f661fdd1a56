"""`scanner catalog list|show|lint`: the catalog library from the command line."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from scanner.catalog import bundled_names, lint_problems, load_catalog, select_tags
from scanner.errors import CatalogError
from scanner.models import Catalog


def add_catalog_parser(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser("catalog", help="list, show and lint catalogs")
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=type(parser))
    verbs.add_parser("list", help="the bundled catalogs")
    show = verbs.add_parser("show", help="a catalog's endpoints")
    show.add_argument("catalog", help="a bundled catalog or a TOML file")
    show.add_argument("--tag", action="append", default=[], help="only endpoints with this tag")
    show.add_argument("--format", choices=("console", "jsonl"), default="console")
    lint = verbs.add_parser("lint", help="validate catalog files (exit 0 clean, 1 warnings, 2 errors)")
    lint.add_argument("files", nargs="+", metavar="FILE")


def _endpoint_line(catalog: Catalog) -> list[dict[str, object]]:
    return [{"host": e.host, "ports": list(e.ports), "expect": e.expect.value, "wildcard": e.wildcard,
             "tags": list(e.tags), "note": e.note} for e in catalog.endpoints]


def cmd_catalog(args: argparse.Namespace) -> int:
    if args.verb == "list":
        for name in bundled_names():
            catalog = load_catalog(name)
            sys.stdout.write(f"{name:<24} {len(catalog.endpoints):>4} endpoints  {catalog.description}\n")
        return 0
    if args.verb == "show":
        catalog = select_tags(load_catalog(args.catalog), tuple(args.tag))
        if args.format == "jsonl":
            for item in _endpoint_line(catalog):
                sys.stdout.buffer.write(orjson.dumps({"event": "catalog_endpoint",
                                                      "catalog": catalog.name, **item}) + b"\n")
            return 0
        sys.stdout.write(f"{catalog.name}: {catalog.description}\nsource: {catalog.source}\n\n")
        for e in catalog.endpoints:
            target = f"{e.host}:{','.join(map(str, e.ports))}"
            extra = f"  (for {e.wildcard})" if e.wildcard else ""
            sys.stdout.write(f"  {target:<52} {e.expect.value:<9} [{', '.join(e.tags)}]{extra}\n")
        return 0
    worst = 0
    for path in args.files:
        try:
            catalog = load_catalog(path if path.endswith(".toml") or "/" in path else f"./{path}")
        except CatalogError as exc:
            sys.stdout.write(f"error  {exc.message}\n")
            worst = 2
            continue
        problems = lint_problems(catalog)
        for problem in problems:
            sys.stdout.write(f"warn   catalog {path}: {problem}\n")
        if not problems:
            sys.stdout.write(f"ok     {path}: {catalog.name}, {len(catalog.endpoints)} endpoints\n")
        worst = max(worst, 1 if problems else 0)
    return worst
