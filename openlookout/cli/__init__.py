"""The `openlookout` command (`main`), one module per command:

- serve.py: `openlookout serve`, the local runtime; edge_agent.py: `openlookout edge-agent`.
- The client commands, which reach the service only through the Lookout for Vision API and S3:
  projects.py, datasets.py, models.py (models, train, start, stop), detect.py, export.py,
  report.py and manifest.py (`manifest from-folder`, with folder_layout.py).
- What they share: connection.py (--endpoint-url, --region, the boto3 clients), output.py (tables,
  JSON, one-line errors and exit codes), progress.py, overlay.py (a detection drawn on its image).

The helpers a user's own boto3 script imports (waiters, API Gateway signing) are `openlookout.client`.
"""

from openlookout.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
