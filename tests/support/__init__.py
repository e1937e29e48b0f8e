"""What the tests share: databases, the seed data set, API clients, mail, config and daemons."""

from pathlib import Path

# the checkout the tests run in
REPO = Path(__file__).resolve().parents[2]
