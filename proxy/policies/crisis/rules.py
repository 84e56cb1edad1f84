"""The transparent layer: patterns for the unmistakable, in English and Spanish, read before the model.

Only first-person statements of the user's own risk, with no negation just before them: "I want to
kill myself", "quiero quitarme la vida", "I cut myself again", "he hits me". Everything else (indirect signs,
idioms, other people, denials) is the learned layer's to judge. One more rule reads the context: a
yes to the assistant asking about a plan, a method or ending one's life.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from proxy.core.chat import SafetyCategory

_FLAGS = re.IGNORECASE


@dataclass(frozen=True)
class Rule:
    category: SafetyCategory
    pattern: re.Pattern[str]


def _rule(category: SafetyCategory, pattern: str) -> Rule:
    return Rule(category, re.compile(pattern, _FLAGS))


_I = r"(?:\bi\b|\bim\b|\bi'm\b|\bi’m\b|\bive\b|\bi've\b|\bi’ve\b|\bill\b|\bi'll\b|\bi’ll\b)"
RULES: tuple[Rule, ...] = (
    # Suicide, English
    _rule(
        "suicide",
        rf"{_I}[^.!?\n]{{0,40}}\b(?:kill|killing|end|ending|take|taking)\s+(?:my\s*self|myself|my\s+(?:own\s+)?life)\b",
    ),
    _rule("suicide", r"\b(?:unalive\s+myself|end\s+it\s+all\s+(?:tonight|today|now|soon))\b"),
    _rule(
        "suicide", rf"{_I}\s*(?:am\s+|'m\s+)?(?:so\s+|really\s+|very\s+|feeling\s+|feel\s+|been\s+|being\s+)*suicidal\b"
    ),
    _rule(
        "suicide",
        rf"{_I}\s*(?:just\s+|really\s+|honestly\s+|only\s+)?(?:want|wanna|wish)\s+(?:to\s+)?(?:die|be\s+dead|not\s+wake\s+up)\b",
    ),
    _rule(
        "suicide",
        rf"{_I}[^.!?\n]{{0,30}}\b(?:going\s+to|gonna|will|plan\s+to|planning\s+to)\s+(?:commit\s+suicide|kill\s+myself)\b",
    ),
    # Suicide, Spanish
    # ("me quiero morir" and "me voy a matar" are everyday hyperbole in Spanish: the learned layer's call)
    _rule(
        "suicide",
        r"\b(?:me\s+quiero|quiero|quisiera|voy\s+a|pienso|estoy\s+pensando\s+en|tengo\s+ganas\s+de)\s+(?:suicidarme|quitarme\s+la\s+vida|acabar\s+con\s+mi\s+vida)\b",
    ),
    _rule("suicide", r"\bme\s+voy\s+a\s+(?:suicidar|quitar\s+la\s+vida)\b"),
    _rule("suicide", r"\b(?:tengo\s+(?:pensamientos|ideas)\s+suicidas|soy\s+suicida|me\s+siento\s+suicida)\b"),
    # Self-harm
    _rule(
        "self_harm", rf"{_I}[^.!?\n]{{0,25}}\b(?:cut|cutting|burn|burning|burned|hurt|hurting|harm|harming)\s+myself\b"
    ),
    _rule(
        "self_harm",
        r"\bme\s+(?:estoy\s+cortando|sigo\s+cortando|volví\s+a\s+cortar|corto\s+(?:los\s+brazos|las\s+muñecas|las\s+piernas))\b",
    ),
    _rule("self_harm", r"\b(?:me\s+autolesiono|autolesionarme|me\s+hago\s+daño\s+a\s+propósito)\b"),
    # Harm to others: only the explicit urge
    _rule(
        "harm_to_others",
        r"\b(?:urges?|thoughts?)\s+(?:to|of)\s+(?:kill|hurt|stab|shoot|strangle)(?:ing)?\s+(?:someone|somebody|people|him|her|them|my\b)",
    ),
    _rule("harm_to_others", r"\bganas\s+de\s+(?:matar|apuñalar|lastimar|hacerle\s+daño)\s+a\b"),
    # Abuse or danger, now
    _rule(
        "abuse",
        r"\b(?:he|she|they|my\s+(?:husband|wife|boyfriend|girlfriend|partner|dad|father|mom|mother|stepdad|stepfather|ex))\s+(?:hits|beats|chokes|punches|kicks|strangles)\s+me\b",
    ),
    _rule("abuse", r"\bthreaten(?:s|ed)\s+to\s+kill\s+me\b"),
    _rule(
        "abuse",
        r"\b(?:mi\s+(?:esposo|marido|novio|novia|pareja|papá|padre|mamá|madre|padrastro)\s+)?me\s+(?:pega|golpea|ahorca|patea)\b",
    ),
    _rule("abuse", r"\bme\s+amenaza(?:ó)?\s+con\s+matarme\b"),
)

# A denial or a past in or just before a match ("I don't want to die", "I stopped cutting myself")
# leaves the message to the learned layer, which has seen such sentences.
_NEGATION = re.compile(
    r"\b(?:not|never|don'?t|dont|do\s+not|didn'?t|no\s+longer|stopped|quit|haven'?t|wouldn'?t|won'?t|no|"
    r"nunca|jamás|ya\s+no|dejé\s+de|nadie|ni)\b|n['’]t\b",
    _FLAGS,
)
# Laughter says hyperbole as often as not ("gonna kms lmao"): such messages are the learned layer's too.
_JOKING = re.compile(r"\b(?:lol|lmao+|lmfao|rofl|haha\w*|jaja\w*|jeje\w*|xd)\b|[😂🤣💀😭]", _FLAGS)
_ASKED_ABOUT_RISK = re.compile(
    r"\b(?:plan|method|means|end(?:ing)?\s+your\s+life|kill(?:ing)?\s+yourself|suicid\w*|hurt(?:ing)?\s+yourself|"
    r"harm(?:ing)?\s+yourself|quitarte\s+la\s+vida|matarte|suicid\w*|hacerte\s+daño|lastimarte)\b",
    _FLAGS,
)
_YES = re.compile(
    r"^\W*(?:yes|yeah|yea|yep|yup|ya|sort\s+of|kind\s+of|kinda|i\s+think\s+so|maybe|i\s+do|i\s+have|sí|si|"
    r"ajá|aja|creo\s+que\s+sí|un\s+poco|tal\s+vez|la\s+verdad\s+sí)\b",
    _FLAGS,
)


def rule_category(text: str, context: str = "") -> SafetyCategory | None:
    if _JOKING.search(text):
        return None
    for rule in RULES:
        for match in rule.pattern.finditer(text):
            if not _NEGATION.search(text[max(0, match.start() - 40) : match.end()]):
                return rule.category
    if context and _YES.search(text) and len(text) < 80 and _ASKED_ABOUT_RISK.search(context):
        hurting = re.search(r"hurt|harm|daño|lastim", context, _FLAGS)
        return "self_harm" if hurting and not re.search(r"suicid|life|vida|kill|matar", context, _FLAGS) else "suicide"
    return None
