"""Conditional VAE: samples of each class on demand, and style transfer.

A conditional VAE is told the label of each digit, in its encoder and its
decoder; its code z then holds what the label does not say: the slant, the
stroke's width, the size.  Left, one row per class: ten draws z ~ N(0, I)
decoded with that label.  Right, style transfer: a held-out digit (first
column) is encoded with its own label, and its code decoded with every label
0-9.  A logistic regression trained on the real digits judges the samples:
the demo prints the share of each class's samples it recognises as that
class, and the same for the transferred digits.  The KL weight beta = 0.5
lets the code keep more of each digit's style (3.2 nats of KL against 1.1
at beta = 1), so that there is more style to transfer.

Run: ``python demos/conditional.py [--fast] [--out DIR]``.
"""
import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import LogisticRegression

from _common import digits, parse_args, report, save_figure, show_images
from npvae import ConditionalVAE

N_STYLES = 8


def main():
    args = parse_args(__doc__.splitlines()[0])
    X_train, X_test, y_train, y_test = digits()
    cvae = ConditionalVAE(latent_dim=4, hidden_dims=(128,), beta=0.5,
                          epochs=3 if args.fast else 100, learning_rate=3e-3,
                          batch_size=64, random_state=0).fit(X_train, y_train)
    clf = LogisticRegression(max_iter=2000).fit(X_train, y_train)
    report("classifier_test_accuracy", clf.score(X_test, y_test))
    report("cvae_test_elbo_nats", cvae.score(X_test, y_test))

    # One row per class: 10 draws from the prior, decoded with that label.
    labels = np.repeat(cvae.classes_, 10)
    samples = cvae.sample(len(labels), labels, random_state=1)
    recognised = clf.predict(samples) == labels
    for c in cvae.classes_:
        report(f"sample_accuracy_class_{c}", float(np.mean(recognised[labels == c])))
    report("sample_accuracy", float(np.mean(recognised)))

    # Style transfer: each held-out digit's code, decoded with every label.
    rng = np.random.default_rng(0)
    rows = rng.choice(len(X_test), N_STYLES, replace=False)
    codes = cvae.transform(X_test[rows], y_test[rows])
    targets = np.tile(cvae.classes_, N_STYLES)
    transferred = cvae.decode(np.repeat(codes, len(cvae.classes_), axis=0), targets)
    report("transfer_accuracy", float(np.mean(clf.predict(transferred) == targets)))
    blank = np.zeros((N_STYLES, 1, 64))
    grid = np.concatenate([X_test[rows][:, None], blank,
                           transferred.reshape(N_STYLES, -1, 64)], axis=1)

    fig, axes = plt.subplots(1, 2, figsize=(10, 5.2))
    show_images(axes[0], samples, 10,
                f"samples, one row per class\nrecognised {np.mean(recognised):.0%}")
    show_images(axes[1], grid.reshape(-1, 64), grid.shape[1],
                "style transfer: a held-out digit, then its code\n"
                "decoded with each label 0-9")
    save_figure(fig, args.out, "conditional.png")


if __name__ == "__main__":
    main()
