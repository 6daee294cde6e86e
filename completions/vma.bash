# bash completion for vma (installed as share/bash-completion/completions/vma)
# Commands come from `vma help` (so your own commands complete too), options
# from `vma help COMMAND`; everything else completes as file names.
_vma() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    if [ "$COMP_CWORD" -eq 1 ]; then
        local cmds
        cmds=$(vma help 2>/dev/null | sed -n 's/^  \([A-Za-z0-9][A-Za-z0-9._-]*\) .*/\1/p; s/^  \([A-Za-z0-9][A-Za-z0-9._-]*\)$/\1/p')
        COMPREPLY=($(compgen -W "$cmds" -- "$cur"))
        return
    fi
    if [[ $cur == -* ]]; then
        local opts
        opts=$(vma help "${COMP_WORDS[1]}" 2>/dev/null | grep -o -- '--[A-Za-z0-9][A-Za-z0-9-]*' | sort -u)
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        return
    fi
    COMPREPLY=($(compgen -f -- "$cur"))
}
complete -o filenames -F _vma vma
