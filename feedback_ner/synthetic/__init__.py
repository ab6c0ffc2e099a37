"""Synthetic data for the offline demo, the tests and the benchmarks: nothing in the library imports it.

- :mod:`~feedback_ner.synthetic.essays`: one generated essay (:func:`generate_essay`), vocabulary in
  ``vocabulary.json`` (:mod:`~feedback_ner.synthetic.vocabulary`);
- :mod:`~feedback_ner.synthetic.corpus`: a corpus in the Kaggle layout (:func:`write_corpus`; command
  ``feedback_ner.sample``);
- :mod:`~feedback_ner.synthetic.models`: tiny local models (:func:`build_tiny`; command ``feedback_ner.tiny``);
- :mod:`~feedback_ner.synthetic.demo_data`: the demo's corpus and model, made once and reused.
"""
