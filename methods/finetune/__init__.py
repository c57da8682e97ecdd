"""Fine-tuning methods: one shared config, loop and checkpoint; each method is its config plus
its data/objective plan.

- ``config``: ``TrainConfig`` (optimiser, schedule, batch, budgets; the one source of training
  defaults) and the shared validation of fine-tuning methods;
- ``loop``: objectives (causal LM + optional regularizer) and ``fit``, the training loop;
- ``checkpoint``: ``Plan``, ``RecordingDataRoot`` and ``finetune``, the one path every
  fine-tuning method takes (checkpoint key from what the plan read, training, saving, loading);
- ``nc3``: the Neural-Collapse fairness regularizer (Xu et al. 2025), a plug-in of every method;
- ``lm``: ``LMFineTuning``, the base of the causal-LM methods on a text corpus;
- ``control`` (``finetune``), ``cda``, ``dropout``, ``nc``: the methods.
"""
