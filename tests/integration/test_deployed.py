"""Runs the contract tests, unchanged, against the stack named by OPENLOOKOUT_ENDPOINT.

Tests that need the local service itself (restarts, its files) skip there.
"""

import pytest

from tests.contract.test_datasets import *  # noqa: F403
from tests.contract.test_models import *  # noqa: F403
from tests.contract.test_projects import *  # noqa: F403

pytestmark = pytest.mark.integration
