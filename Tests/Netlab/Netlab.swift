// The hermetic test network (netlab): lands with the foundation issue.
import CagentCore
