namespace Anteroom.Storage;

/// <summary>
/// The configured store cannot be used: it cannot be reached, or it was written by a newer Anteroom. Its message is
/// meant for the operator as it stands, one line naming the setting to look at.
/// </summary>
internal sealed class StorageStartException(string message, Exception? innerException = null) : InvalidOperationException(message, innerException);
