"""The crisis-resources message: short, warm, and with numbers a person can use now, per region.

Built in: US (the default), CA, GB, ES, MX, in English and Spanish. An operator may add regions or
change the wording with a JSON file (PROXY_SAFETY_RESOURCES_FILE) of the same shape as REGIONS:
{"<REGION>": {"<lang>": {"opening": "...", "suicide": "...", "self_harm": "...", "harm_to_others": "...",
"abuse": "...", "closing": "..."}}}, a category missing meaning the region's "suicide" line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from proxy.core.chat import SafetyCategory

Lines = dict[str, str]

_US_EN = {
    "opening": "It sounds like you are carrying something really heavy right now, and I'm glad you said it.",
    "suicide": "You can call or text 988 (Suicide & Crisis Lifeline) at any time, day or night.",
    "self_harm": "You can call or text 988 (Suicide & Crisis Lifeline) at any time to talk with someone.",
    "harm_to_others": "If you feel you might hurt someone, you can call or text 988 right now to talk it through.",
    "abuse": "If you are not safe, the National Domestic Violence Hotline is there any time: call 1-800-799-7233 "
    "or text START to 88788.",
    "closing": "If you are in immediate danger, call 911. I'm an AI, not a person or a therapist, but I'm here to keep "
    "talking with you.",
}
_US_ES = {
    "opening": "Parece que estás cargando con algo muy pesado ahora mismo, y me alegra que lo hayas dicho.",
    "suicide": "Puedes llamar o enviar un mensaje al 988 (Línea de Prevención del Suicidio y Crisis) a cualquier "
    "hora; marca 2 para español.",
    "harm_to_others": "Si sientes que podrías hacerle daño a alguien, puedes llamar o escribir al 988 ahora mismo.",
    "abuse": "Si no estás a salvo, la Línea Nacional contra la Violencia Doméstica atiende a toda hora: "
    "1-800-799-7233.",
    "closing": "Si estás en peligro inmediato, llama al 911. Soy una IA, no una persona ni un terapeuta, pero sigo "
    "aquí para hablar contigo.",
}
REGIONS: dict[str, dict[str, Lines]] = {
    "US": {"en": _US_EN, "es": _US_ES},
    "CA": {
        "en": {
            **_US_EN,
            "suicide": "You can call or text 9-8-8 (Suicide Crisis Helpline) at any time.",
            "self_harm": "You can call or text 9-8-8 at any time to talk with someone.",
            "abuse": "If you are not safe, call or text 9-8-8, or find a local shelter at sheltersafe.ca.",
        },
        "es": {
            **_US_ES,
            "suicide": "Puedes llamar o escribir al 9-8-8 a cualquier hora.",
            "abuse": "Si no estás a salvo, llama o escribe al 9-8-8.",
        },
    },
    "GB": {
        "en": {
            **_US_EN,
            "suicide": "You can call Samaritans free on 116 123 at any time, day or night.",
            "self_harm": "You can call Samaritans free on 116 123 at any time.",
            "harm_to_others": "If you feel you might hurt someone, call 111, or Samaritans on 116 123.",
            "abuse": "If you are not safe, the National Domestic Abuse Helpline is free on 0808 2000 247, any time.",
            "closing": "If you are in immediate danger, call 999. I'm an AI, not a person or a therapist, but I'm "
            "here to keep talking with you.",
        },
        "es": {
            **_US_ES,
            "suicide": "Puedes llamar gratis a Samaritans al 116 123 a cualquier hora.",
            "abuse": "Si no estás a salvo, llama gratis al 0808 2000 247.",
            "closing": "Si estás en peligro inmediato, llama al 999. Soy una IA, no una persona ni un terapeuta.",
        },
    },
    "ES": {
        "es": {
            **_US_ES,
            "suicide": "Puedes llamar al 024, la línea de atención a la conducta suicida, gratis y a cualquier hora.",
            "harm_to_others": "Si sientes que podrías hacerle daño a alguien, llama al 024.",
            "abuse": "Si no estás a salvo, el 016 atiende a toda hora y no deja rastro en la factura.",
            "closing": "Si estás en peligro inmediato, llama al 112. Soy una IA, no una persona ni un terapeuta, "
            "pero sigo aquí para hablar contigo.",
        },
        "en": {
            **_US_EN,
            "suicide": "You can call 024, Spain's free suicide prevention line, at any time.",
            "self_harm": "You can call 024 at any time to talk with someone.",
            "abuse": "If you are not safe, call 016 at any time.",
            "closing": "If you are in immediate danger, call 112. I'm an AI, not a person or a therapist.",
        },
    },
    "MX": {
        "es": {
            **_US_ES,
            "suicide": "Puedes llamar a la Línea de la Vida al 800 911 2000, gratis y a cualquier hora.",
            "harm_to_others": "Si sientes que podrías hacerle daño a alguien, llama a la Línea de la Vida: "
            "800 911 2000.",
            "abuse": "Si no estás a salvo, llama al 911.",
            "closing": "Si estás en peligro inmediato, llama al 911. Soy una IA, no una persona ni un terapeuta, "
            "pero sigo aquí para hablar contigo.",
        },
        "en": {
            **_US_EN,
            "suicide": "You can call Línea de la Vida free on 800 911 2000 at any time.",
            "self_harm": "You can call Línea de la Vida on 800 911 2000 at any time.",
            "abuse": "If you are not safe, call 911.",
        },
    },
}

_SPANISH_WORDS = frozenset(
    "que me mi estoy quiero no ya y de la el los las un una es soy tengo pero por para con sin nadie nada todo "
    "vida morir siento estar muy mas más porque cuando voy hoy".split()
)
_ENGLISH_WORDS = frozenset(
    "i me my the a an and to of is am i'm im it that this but for with want feel so just not don't dont "
    "anymore life die can can't".split()
)


def language_of(text: str) -> str:
    """ "es" or "en", from the little words a message is made of (enough to pick the message's language)."""
    words = re.findall(r"[a-záéíóúñü']+", text.lower())
    spanish = sum(word in _SPANISH_WORDS for word in words) + 2 * bool(re.search(r"[ñ¿¡áéíóú]", text.lower()))
    english = sum(word in _ENGLISH_WORDS for word in words)
    return "es" if spanish > english else "en"


class CrisisResources:
    def __init__(self, region: str, regions: dict[str, dict[str, Lines]] = REGIONS) -> None:
        region = region.upper()
        if region not in regions:
            known = ", ".join(sorted(regions))
            raise ValueError(f"no crisis resources for region {region!r} (known: {known}): set PROXY_SAFETY_REGION "
                             "to one of them, or add it in PROXY_SAFETY_RESOURCES_FILE")  # fmt: skip
        self.region = region
        self._languages = regions[region]

    @classmethod
    def load(cls, region: str, resources_file: Path | None) -> CrisisResources:
        if resources_file is None:
            return cls(region)
        try:
            extra = json.loads(resources_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"PROXY_SAFETY_RESOURCES_FILE {resources_file} cannot be read: {exc}") from None
        merged = {name: dict(languages) for name, languages in REGIONS.items()}
        for name, languages in extra.items():
            for language, lines in languages.items():
                merged.setdefault(name.upper(), {})[language] = {**merged.get(name.upper(), {}).get(language, {}),
                                                                 **lines}  # fmt: skip
        return cls(region, merged)

    def message(self, category: SafetyCategory, text: str) -> str:
        """The message for `category`, in the language `text` is written in when the region has it."""
        lines = self._languages.get(language_of(text)) or next(iter(self._languages.values()))
        middle = lines.get(category) or lines["suicide"]
        return f"{lines['opening']} {middle} {lines['closing']}\n\n"
