"""Command groups beyond the core: one module per area."""

from __future__ import annotations

import click

GROUPS: list[click.Command] = []

from baitiao.commands.bench import bench  # noqa: E402

GROUPS.append(bench)

from baitiao.commands.plans import plan  # noqa: E402

GROUPS.append(plan)

from baitiao.commands.collections import collections  # noqa: E402

GROUPS.append(collections)

from baitiao.commands.accounts import account  # noqa: E402

GROUPS.append(account)

from baitiao.commands.simulate import simulate  # noqa: E402

GROUPS.append(simulate)

from baitiao.commands.report import report  # noqa: E402

GROUPS.append(report)

from baitiao.commands.health import health  # noqa: E402

GROUPS.append(health)

from baitiao.commands.dead_letters import dlq  # noqa: E402

GROUPS.append(dlq)

from baitiao.commands.status import status  # noqa: E402

GROUPS.append(status)

from baitiao.commands.keys import keys  # noqa: E402

GROUPS.append(keys)

from baitiao.commands.desk import api, desk  # noqa: E402

GROUPS.extend([api, desk])
