"""Built-in methods, registered explicitly: one module per method."""
from bench.method import register
from methods.bert4rec import BERT4Rec
from methods.bpr import BPR
from methods.caser import Caser
from methods.collm import CoLLM, CoLLMStage1
from methods.ctrl import CTRL
from methods.din import DIN
from methods.ganprompt import ALL as GANPROMPT_METHODS
from methods.gru4rec import GRU4Rec
from methods.hgn import HGN
from methods.itemknn import ItemKNN
from methods.lightgcn import LightGCN
from methods.p5 import P5
from methods.pop import Pop
from methods.random_scores import RandomScores
from methods.s3rec import S3Rec
from methods.tallrec import TALLRec
from methods.textsim import TextSim, TextSimLLMInput
from methods.sasrec import SASRec

for _cls in (RandomScores, Pop, TextSim, TextSimLLMInput, ItemKNN, BPR, LightGCN, GRU4Rec, Caser, SASRec, BERT4Rec, HGN,
             DIN, S3Rec, *GANPROMPT_METHODS, TALLRec, CTRL, P5, CoLLM, CoLLMStage1):
    register(_cls)
