// The library's `dml` command line, with Circle loss registered beside the standard losses.
import CircleLoss
import DMLCommands
import DMLLosses

var registry = LossRegistry.standard
registry.register(LossFactory(CircleLoss<Float>.self))
CommandRegistry.losses = registry
DML.main()
