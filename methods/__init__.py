"""Built-in methods, registered explicitly: one module per method."""
from bench.method import register
from methods.pop import Pop
from methods.random_scores import RandomScores
from methods.sasrec import SASRec

for _cls in (RandomScores, Pop, SASRec):
    register(_cls)
