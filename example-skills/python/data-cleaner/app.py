"""examples/data-cleaner: cleans a batch of records by a small field schema.

Each field says its type and how to clean it; every record comes back cleaned (trimmed,
coerced, normalized, defaults filled, unknown fields dropped) or is reported as rejected
with the reasons, so one bad row never sinks the batch.

    {"schema": {"name": {"type": "string", "required": true, "case": "title"},
                "age": {"type": "integer", "min": 0, "max": 150},
                "email": {"type": "email"}},
     "records": [{"name": "  ada LOVELACE ", "age": "36", "email": "Ada@Example.COM"}]}
"""

import re

from omniforge_sdk import Context, SkillError, skill

TYPES = ("string", "integer", "number", "boolean", "email", "date")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
DAY_FIRST = re.compile(r"^(\d{1,2})[./](\d{1,2})[./](\d{4})$")
TRUE = {"true", "yes", "y", "1", "on"}
FALSE = {"false", "no", "n", "0", "off"}


@skill
def clean(ctx: Context, input: dict) -> dict:
    schema = input.get("schema")
    records = input.get("records")
    if not isinstance(schema, dict) or not schema:
        raise SkillError.invalid_input("schema must be an object of field rules")
    if not isinstance(records, list):
        raise SkillError.invalid_input("records must be an array")
    for field, rule in schema.items():
        if not isinstance(rule, dict) or rule.get("type") not in TYPES:
            raise SkillError.invalid_input(f"schema.{field}.type must be one of {', '.join(TYPES)}")

    cleaned, rejected = [], []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            rejected.append({"index": index, "errors": ["not an object"]})
            continue
        row, errors = {}, []
        for field, rule in schema.items():
            value = record.get(field)
            if isinstance(value, str) and rule.get("trim", True):
                value = " ".join(value.split())
            if value is None or value == "":
                if "default" in rule:
                    row[field] = rule["default"]
                elif rule.get("required"):
                    errors.append(f"{field}: required")
                continue
            try:
                row[field] = coerce(value, rule)
            except ValueError as e:
                errors.append(f"{field}: {e}")
        if errors:
            rejected.append({"index": index, "errors": errors})
        else:
            cleaned.append(row)
    return {
        "records": cleaned,
        "rejected": rejected,
        "stats": {"input": len(records), "cleaned": len(cleaned), "rejected": len(rejected)},
    }


def coerce(value, rule):
    kind = rule["type"]
    if kind == "string":
        text = str(value)
        case = rule.get("case")
        if case == "lower":
            text = text.lower()
        elif case == "upper":
            text = text.upper()
        elif case == "title":
            text = " ".join(w[:1].upper() + w[1:].lower() for w in text.split(" "))
        allowed = rule.get("enum")
        if allowed is not None and text not in allowed:
            raise ValueError(f"{text!r} is not one of {allowed}")
        return text
    if kind == "email":
        text = str(value).strip().lower()
        if not EMAIL.match(text):
            raise ValueError(f"{value!r} is not an email address")
        return text
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in TRUE:
            return True
        if text in FALSE:
            return False
        raise ValueError(f"{value!r} is not a yes/no value")
    if kind == "date":
        text = str(value).strip()
        match = DATE.match(text)
        if match:
            year, month, day = (int(g) for g in match.groups())
        else:
            match = DAY_FIRST.match(text)
            if not match:
                raise ValueError(f"{value!r} is not a date (YYYY-MM-DD or DD.MM.YYYY)")
            day, month, year = (int(g) for g in match.groups())
        if not (1 <= month <= 12 and 1 <= day <= days_in(year, month)):
            raise ValueError(f"{value!r} is not a real date")
        return f"{year:04d}-{month:02d}-{day:02d}"
    number = to_number(value, integer=kind == "integer")
    if "min" in rule and number < rule["min"]:
        raise ValueError(f"{number} is below {rule['min']}")
    if "max" in rule and number > rule["max"]:
        raise ValueError(f"{number} is above {rule['max']}")
    return number


def to_number(value, integer):
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, (int, float)):
        number = value
    else:
        text = str(value).strip().replace(",", "").replace("_", "")
        try:
            number = float(text) if any(c in text for c in ".eE") else int(text)
        except ValueError:
            raise ValueError(f"{value!r} is not a number") from None
    if integer:
        if isinstance(number, float) and not number.is_integer():
            raise ValueError(f"{value!r} is not a whole number")
        return int(number)
    return number


def days_in(year, month):
    if month == 2:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        return 29 if leap else 28
    return 30 if month in (4, 6, 9, 11) else 31
