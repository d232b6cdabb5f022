"""kubeflow-training's TrainingClient end to end: create_job from a function, follow the logs."""

import pytest

training = pytest.importorskip("kubeflow.training")


def test_create_job_and_follow_logs(kubeconfig, unique, capsys):
    tc = training.TrainingClient(config_file=kubeconfig, namespace="default")

    def train(params):  # the v1 SDK passes `parameters` as one dict
        import os
        import time
        time.sleep(4)  # still running when the SDK starts following (it skips pods not Running)
        print(params["greeting"], "rank", os.environ["RANK"], "of", os.environ["WORLD_SIZE"])

    # num_workers=2 makes the SDK launch with torchrun across a Master and a Worker.
    tc.create_job(name=unique, train_func=train, parameters={"greeting": "hello"}, num_workers=2,
                  base_image="docker.io/pytorch/pytorch:2.3.0-cuda12.1-cudnn8-runtime")
    tc.wait_for_job_conditions(unique, expected_conditions={"Running"}, polling_interval=0.2, wait_timeout=30)
    pods = sorted(tc.get_job_pod_names(unique))
    assert pods == [f"{unique}-master-0", f"{unique}-worker-0"]
    tc.get_job_logs(unique, is_master=False, follow=True)
    out = capsys.readouterr().out
    assert f"[Pod {unique}-master-0]: hello rank 0 of 2" in out, out
    assert f"[Pod {unique}-worker-0]: hello rank 1 of 2" in out, out
    tc.wait_for_job_conditions(unique, polling_interval=0.2, wait_timeout=60)
    assert tc.is_job_succeeded(unique)
    tc.delete_job(unique)
