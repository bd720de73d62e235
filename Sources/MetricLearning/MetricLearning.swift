@_exported import DMLKernels
@_exported import DMLCore
@_exported import DMLNetworks
@_exported import DMLTraining
@_exported import DMLLosses
@_exported import DMLSamplers
@_exported import DMLEvaluation
@_exported import DMLData
