"""Kill -9 a `dml train` run at random moments, resume it each time, and check that the final
model equals an uninterrupted run with the same seed (issue 10).

Usage: kill_resume.py DML [KILLS=25] [SEED=1]. Prints a summary; exits 1 on any mismatch.
"""
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

dml = sys.argv[1]
kills_wanted = int(sys.argv[2]) if len(sys.argv) > 2 else 25
rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
work = tempfile.mkdtemp(prefix="dml-kill-")
data = os.path.join(work, "data.csv")
state = 42
with open(data, "w") as f:
    centres = [[rng.uniform(-2, 2) for _ in range(8)] for _ in range(6)]
    for i in range(600):
        c = i % 6
        f.write(f"{c}," + ",".join(f"{centres[c][j] + rng.uniform(-0.4, 0.4):.5f}" for j in range(8)) + "\n")


# The recipes killed: triplets with semi-hard mining; softmax + center loss (centers moved by their
# own rule); ArcFace (class weights stepped by the optimizer).
RECIPES = {
    "triplet+semihard": ["--loss", "triplet:margin=0.2", "--miner", "semihard:margin=0.3"],
    "softmax+center": ["--loss", "softmax", "--loss", "center:weight=0.1"],
    "arcface": ["--loss", "arcface"],
}


def arguments(folder, recipe):
    return [dml, "train", "--data", data, "--train-classes", "0-3", "--validation-classes", "2-3", "--test-classes", "4-5",
            "--network", "mlp:hidden=32,embedding=8"] + RECIPES[recipe] + [
            "--batch", "m-per-class:m=4,size=32", "--optimizer", "adamw:lr=0.003", "--augment", "none", "--epochs", "150",
            "--seed", "5", "--checkpoint", folder, "--log", "json", "--log-every", "0"]


def latest(folder):
    return os.path.join(folder, os.readlink(os.path.join(folder, "latest")))


def run(recipe):
    straight = os.path.join(work, recipe + "-straight")
    start = time.time()
    reference = subprocess.run(arguments(straight, recipe), capture_output=True, text=True)
    assert reference.returncode == 0, reference.stderr
    duration = time.time() - start
    killed = os.path.join(work, recipe + "-killed")
    kills = launches = resumes = rejected = 0
    final = None
    while True:
        launches += 1
        args = arguments(killed, recipe)
        if os.path.exists(os.path.join(killed, "latest")):
            args.append("--resume")
            resumes += 1
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if kills < kills_wanted:
            time.sleep(rng.uniform(0.02, max(0.05, duration / 8)))
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                kills += 1
        out, err = p.communicate()
        if "checksum" in err:
            rejected += 1
        if p.returncode == 0:
            final = out
            if kills >= kills_wanted:
                break
        elif p.returncode != -signal.SIGKILL:
            print(f"{recipe}: launch {launches} failed ({p.returncode}):\n{err}")
            return False
        if launches > 20 * kills_wanted:
            print(f"{recipe}: too many launches")
            return False
    same = all(open(os.path.join(latest(straight), f), "rb").read() == open(os.path.join(latest(killed), f), "rb").read()
               for f in ["parameters.safetensors", "optimizer.safetensors"])
    test_line = lambda text: [l for l in text.splitlines() if '"event":"test"' in l][-1]
    same_metrics = test_line(reference.stdout) == test_line(final)
    print(f"{recipe}: kill -9 loop: {kills} runs killed at random moments, {resumes} resumes, {launches} launches;"
          f" checkpoints refused by checksum: {rejected}")
    print(f"{recipe}: final parameters and optimizer state equal to the uninterrupted run: {same}; test metrics equal: {same_metrics}")
    return same and same_metrics


ok = all([run(recipe) for recipe in RECIPES])
shutil.rmtree(work)
sys.exit(0 if ok else 1)
