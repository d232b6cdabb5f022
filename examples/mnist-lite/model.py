import math

try:
    from tabulate import tabulate  # noqa: F401  (installed by the job's pip step)
except ImportError:  # the example also runs without its optional dependency
    tabulate = None


class LogisticRegression:
    def __init__(self):
        self.w = [0.0, 0.0]
        self.b = 0.0

    def predict(self, x):
        z = self.w[0] * x[0] + self.w[1] * x[1] + self.b
        return 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0)))

    def train_epoch(self, data, lr):
        total = 0.0
        for x, y in data:
            p = self.predict(x)
            grad = p - y
            self.w[0] -= lr * grad * x[0]
            self.w[1] -= lr * grad * x[1]
            self.b -= lr * grad
            total += -(y * math.log(p + 1e-12) + (1 - y) * math.log(1 - p + 1e-12))
        return total / len(data)

    def accuracy(self, data):
        return sum((self.predict(x) > 0.5) == (y > 0.5) for x, y in data) / len(data)
