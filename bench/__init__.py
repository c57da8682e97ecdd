"""taxbench: what does debiasing cost a language model?"""

__version__ = "0.1.0"
