"""`openlookout projects list|create|delete`."""

from __future__ import annotations

import argparse
from typing import Any

from openlookout.cli.connection import Clients, client_command
from openlookout.cli.output import Column, Table, print_json


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("projects", help="list, create and delete projects")
    commands = parser.add_subparsers(dest="projects_command", required=True, metavar="COMMAND")
    listing = client_command(commands, "list", "list the projects", project=False)
    listing.add_argument("--json", action="store_true", help="print ListProjects' Projects as JSON")
    listing.set_defaults(run=projects_list)
    create = client_command(commands, "create", "create a project")
    create.set_defaults(run=projects_create)
    delete = client_command(commands, "delete", "delete a project (no datasets or models left)")
    delete.set_defaults(run=projects_delete)


def projects_list(args: argparse.Namespace) -> int:
    lv = Clients.of(args).lookoutvision
    projects: list[dict[str, Any]] = [
        project for page in lv.get_paginator("list_projects").paginate() for project in page["Projects"]
    ]
    if args.json:
        print_json(projects)
        return 0
    with Table(Column("project", 32), Column("created")) as table:
        for project in projects:
            table.row(project["ProjectName"], f"{project['CreationTimestamp']:%Y-%m-%d %H:%M:%S}")
    return 0


def projects_create(args: argparse.Namespace) -> int:
    answer = Clients.of(args).lookoutvision.create_project(ProjectName=args.project)
    print(answer["ProjectMetadata"]["ProjectArn"])
    return 0


def projects_delete(args: argparse.Namespace) -> int:
    answer = Clients.of(args).lookoutvision.delete_project(ProjectName=args.project)
    print(f"deleted {answer['ProjectArn']}")
    return 0
