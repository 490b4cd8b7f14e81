"""The GPT (and its LSTM baseline), the shard loader, the training loop and generation.

No Prefect here: flows/ wraps `model.train_stage.TRAIN` like any other stage.
"""
