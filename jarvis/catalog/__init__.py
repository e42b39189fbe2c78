"""The model catalog: cached Hub facts per model, eligibility from architecture, card text, refresh and verify."""
