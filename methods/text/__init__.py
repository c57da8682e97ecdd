"""Text resources shared by every method: one home per concept.

- ``words``: the attribute word lists (bias-bench's ``bias_attribute_words.json`` by default,
  opt-in extras by name) and the one list of bias types, ``BIAS_TYPES``;
- ``swap``: the one counterfactual swapper (bias-bench's matching rule);
- ``corpus``: the one plain-text corpus reader (WikiText detokenizer, sentence runs, chunk packing).
"""
