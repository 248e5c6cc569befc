using System.Reflection;
using System.Reflection.Emit;

namespace Anteroom.Tests.Architecture;

/// <summary>
/// The host project's folders depend in one direction: the APIs (native, drop-in, admin) and the composition that
/// wires them (Gateway) depend on the request core (Requests, Limits), never the other way round. Checked on the
/// compiled assembly, so a reference through a signature, a field or a method body all count, whatever the source
/// spells (a using, a qualified name, a var).
/// </summary>
public sealed class DependencyDirectionTests
{
    private static readonly string[] Core = ["Anteroom.Requests", "Anteroom.Limits"];
    private static readonly string[] Above = ["Anteroom.Native", "Anteroom.DropIn", "Anteroom.Admin", "Anteroom.Gateway"];

    private static readonly Dictionary<short, OpCode> OpCodesByValue = typeof(OpCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!)
        .ToDictionary(o => o.Value);

    [Fact]
    public void TheRequestCore_RefersToNoTypeOfTheApisOrTheComposition()
    {
        var assembly = typeof(Requests.LiveRequest).Assembly;
        var violations = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var type in assembly.GetTypes().Where(t => InAny(t, Core)))
        {
            foreach (var (where, referenced) in References(type))
            {
                foreach (var named in Flatten(referenced).Where(t => InAny(t, Above)))
                {
                    violations.Add($"{type.FullName} → {named.FullName} ({where})");
                }
            }
        }

        Assert.True(violations.Count == 0, "The request core depends on the layers above it:\n" + string.Join("\n", violations));
    }

    [Fact]
    public void TheCheck_SeesAReferenceInAMethodBody()
    {
        // The probe names a Gateway type only inside a method body: no signature or field shows it.
        var found = References(typeof(Probe)).SelectMany(r => Flatten(r.Type)).ToHashSet();

        Assert.Contains(typeof(Anteroom.Gateway.ApiSurfaces), found);
    }

    private static bool InAny(Type type, string[] namespaces)
    {
        string? ns = (type.IsNested ? Outermost(type) : type).Namespace;
        return ns is not null && namespaces.Any(n => ns == n || ns.StartsWith(n + ".", StringComparison.Ordinal));
    }

    private static Type Outermost(Type type)
    {
        while (type.DeclaringType is { } outer)
        {
            type = outer;
        }

        return type;
    }

    /// <summary>A type and every type it is built from: element types and generic arguments.</summary>
    private static IEnumerable<Type> Flatten(Type type)
    {
        if (type.HasElementType)
        {
            foreach (var inner in Flatten(type.GetElementType()!))
            {
                yield return inner;
            }

            yield break;
        }

        if (type.IsGenericParameter)
        {
            yield break;
        }

        yield return type.IsGenericType ? type.GetGenericTypeDefinition() : type;
        if (type.IsGenericType)
        {
            foreach (var argument in type.GetGenericArguments().SelectMany(Flatten))
            {
                yield return argument;
            }
        }
    }

    private static IEnumerable<(string Where, Type Type)> References(Type type)
    {
        const BindingFlags All = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        if (type.BaseType is { } baseType)
        {
            yield return ("base type", baseType);
        }

        foreach (var implemented in type.GetInterfaces())
        {
            yield return ("interface", implemented);
        }

        foreach (var field in type.GetFields(All))
        {
            yield return ($"field {field.Name}", field.FieldType);
        }

        foreach (var property in type.GetProperties(All))
        {
            yield return ($"property {property.Name}", property.PropertyType);
        }

        foreach (var method in type.GetMethods(All).Cast<MethodBase>().Concat(type.GetConstructors(All)))
        {
            if (method is MethodInfo { ReturnType: var returnType })
            {
                yield return ($"{method.Name} returns", returnType);
            }

            foreach (var parameter in method.GetParameters())
            {
                yield return ($"{method.Name} parameter {parameter.Name}", parameter.ParameterType);
            }

            foreach (var local in method.GetMethodBody()?.LocalVariables ?? [])
            {
                yield return ($"{method.Name} local", local.LocalType);
            }

            foreach (var used in BodyReferences(method))
            {
                yield return ($"{method.Name} body", used);
            }
        }
    }

    /// <summary>The types a method's IL names: the declaring types of what it calls, creates or loads, and the types it uses.</summary>
    private static IEnumerable<Type> BodyReferences(MethodBase method)
    {
        if (method.GetMethodBody()?.GetILAsByteArray() is not { } il)
        {
            yield break;
        }

        var module = method.Module;
        var typeArguments = method.DeclaringType is { IsGenericType: true } declaring ? declaring.GetGenericArguments() : null;
        var methodArguments = method.IsGenericMethod ? method.GetGenericArguments() : null;
        int at = 0;
        while (at < il.Length)
        {
            short value = il[at] == 0xFE ? (short)(0xFE00 | il[at + 1]) : il[at];
            at += il[at] == 0xFE ? 2 : 1;
            var opCode = OpCodesByValue[value];
            switch (opCode.OperandType)
            {
                case OperandType.InlineMethod:
                case OperandType.InlineField:
                case OperandType.InlineTok:
                case OperandType.InlineType:
                    int token = BitConverter.ToInt32(il, at);
                    var member = module.ResolveMember(token, typeArguments, methodArguments);
                    switch (member)
                    {
                        case Type used:
                            yield return used;
                            break;
                        case FieldInfo field:
                            yield return field.DeclaringType!;
                            yield return field.FieldType;
                            break;
                        case MethodBase called:
                            yield return called.DeclaringType!;
                            if (called is MethodInfo { ReturnType: var returned })
                            {
                                yield return returned;
                            }

                            if (called.IsGenericMethod)
                            {
                                foreach (var argument in called.GetGenericArguments())
                                {
                                    yield return argument;
                                }
                            }

                            break;
                    }

                    at += 4;
                    break;
                case OperandType.InlineSwitch:
                    at += 4 + (4 * BitConverter.ToInt32(il, at));
                    break;
                default:
                    at += OperandSize(opCode.OperandType);
                    break;
            }
        }
    }

    private static int OperandSize(OperandType operand) => operand switch
    {
        OperandType.InlineNone => 0,
        OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
        OperandType.InlineVar => 2,
        OperandType.InlineI8 or OperandType.InlineR => 8,
        _ => 4,
    };

    /// <summary>Stands in for a core type that reaches up; only <see cref="TheCheck_SeesAReferenceInAMethodBody"/> reads it.</summary>
    private static class Probe
    {
        public static int Length() => Anteroom.Gateway.ApiSurfaces.OpenAIErrorType(400).Length;
    }
}
