"""scikit-learn's Barnes-Hut t-SNE on the same points as dml-bench plots, for the same-run ratio.

Usage: sklearn_tsne.py POINTS.npy THREADS. Prints one JSON object: version, seconds, KL divergence.
"""
import json
import sys
import time

import numpy as np
import sklearn
from sklearn.manifold import TSNE

x = np.load(sys.argv[1]).astype(np.float32)
threads = int(sys.argv[2])
start = time.perf_counter()
tsne = TSNE(n_components=2, perplexity=30.0, init="pca", method="barnes_hut", angle=0.5,
            learning_rate="auto", early_exaggeration=12.0, random_state=0, n_jobs=threads)
try:
    tsne.set_params(max_iter=1000)
except ValueError:
    tsne.set_params(n_iter=1000)
tsne.fit_transform(x)
print(json.dumps({"sklearn": sklearn.__version__, "seconds": time.perf_counter() - start,
                  "kl": float(tsne.kl_divergence_)}))
