// The `dml` tool: the standard registry and the command tree. A researcher's package can do the
// same with its own losses registered first.
import DMLCommands

CommandRegistry.losses = .standard
DML.main()
