// The library from a program: a network, a loss and a miner of this package, trained with
// validation, early stopping and checkpoints; run it again with --resume to continue.
import ResearchRecipe
import MetricLearning

let folder = CommandLine.arguments.dropFirst().first { !$0.hasPrefix("--") } ?? "runs/recipe"
let pool = try FashionMNIST.load(train: true).restricted(to: [0, 1, 2, 3, 4])
let train = pool.restricted(to: [0, 1, 2]), validation = pool.restricted(to: [3, 4]).subset(Array(0..<1000))
var run = try TrainingRun(
  trainer: Trainer(
    network: ResidualMLP.make(inputFeatures: 784), loss: BinomialDevianceLoss<Float>(), sampler: HardestPairsMiner<Float>(),
    optimizer: Adam<Float>(learningRate: 1e-3)),
  training: train, validation: validation, batches: MPerClassSampler(labels: train.labels, m: 4, batchSize: 128, seed: 1),
  settings: RunSettings(
    epochs: CommandLine.arguments.contains("--resume") ? 2 : 1, patience: 2,
    checkpoint: CheckpointSettings(folder: folder, resume: CommandLine.arguments.contains("--resume"), configuration: ["recipe": "binomial-deviance"])))
let summary = try run.fit { if case .epoch(let e) = $0 { print("epoch \(e.epoch)  loss \(e.meanLoss)  validation MAP@R \(e.validationMapAtR!)") } }
let report = try run.test(on: FashionMNIST.load(train: false).restricted(to: [5, 6, 7, 8, 9]))
print("best epoch \(summary.bestEpoch); test MAP@R \(report.trained.mapAtR) (untrained \(report.untrained.mapAtR), raw \(report.rawInput.mapAtR))")
