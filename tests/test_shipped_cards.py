import json
import re
from pathlib import Path

from signver.models import MODELS_DIR

REPO = Path(__file__).resolve().parents[1]


def test_every_shipped_cards_training_command_names_a_config_in_the_project():
    """A card's training command is how a reader re-makes the model: its configs must exist."""
    named = []
    for card_path in sorted(MODELS_DIR.glob("*.json")):
        card = json.loads(card_path.read_text())
        commands = [card.get("training_command")] + [part.get("training_command") for part in card.values() if isinstance(part, dict)]
        for command in filter(None, commands):
            for config in re.findall(r"--config ([^\s,;]+)", command):
                named.append((card_path.name, config))
    assert len(named) >= 30
    assert [(card, config) for card, config in named if not (REPO / config).is_file()] == []
